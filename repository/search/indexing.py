"""Keeping the search index right: one SearchDocument per public version, rewritten whenever what readers see
of it changes.

`search_index_version` runs inside the transaction of the change (publish, correct, withdraw: the listeners of
repository/hooks.py's events), so a search never sees a version its landing page does not show, nor misses one
it does. It also moves the record's "latest" flag, so a new version supersedes the one before it.
`search_reindex` rebuilds everything in batches (after an upgrade, after `seed_records`).

The file access is part of the document (the `access` facet) and decides what is indexed: a version whose files
are closed (embargoed, restricted) is found by its metadata only (title, description, creators, keywords), never
by the text of its notebook. A change of access (a correction, an embargo lifted on its day) must therefore
rewrite the document: `search_index_version` is what the access services call (through the version_corrected
event, or directly).
"""

import json
import logging
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, OuterRef, Prefetch, Subquery, Value
from django.db.models.functions import Coalesce

from repository import hooks, storage
from repository.access.policy import effective_access
from repository.models import (
    ExecutionRun,
    FileAccess,
    SearchDocument,
    SearchIndexState,
    SearchTerm,
    UsageCount,
    Version,
    VersionFile,
)

logger = logging.getLogger(__name__)

# A version readers can find: accepted, with its DOI registered or being registered. Withdrawn ones never.
SEARCHABLE_STATES = (Version.State.PUBLISHING, Version.State.PUBLISHED)


def search_index_version(*, version: Version) -> None:
    """Write (or remove, when it is no longer public) the index entry of one version, with its access as readers
    get it today; update its record's latest flag. Call inside the transaction that changed the version (a
    publication, a correction, a withdrawal, a change of access, an embargo lifted)."""
    SearchDocument.objects.filter(pk=version.pk).delete()  # its terms go with it
    version = Version.objects.filter(pk=version.pk).first()
    if version is not None and version.state in SEARCHABLE_STATES:
        _write_documents(_load([version.pk]))
    _refresh_latest(record_ids=[version.record_id] if version else [])
    search_generation_bump()


def search_reindex(*, batch_size: int = 2000, progress: Callable[[int], None] | None = None) -> int:
    """Rebuild the whole index, batch by batch (each its own transaction); return how many versions it holds."""
    with transaction.atomic():
        SearchDocument.objects.all().delete()
        search_generation_bump()
    pks = list(Version.objects.filter(state__in=SEARCHABLE_STATES).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), batch_size):
        with transaction.atomic():
            _write_documents(_load(pks[start:start + batch_size]))
            search_generation_bump()
        if progress:
            progress(min(start + batch_size, len(pks)))
    with transaction.atomic():
        _refresh_latest(record_ids=None)
        search_generation_bump()
    return len(pks)


def search_verdict_refresh(*, version_pk: int) -> None:
    """A run of the version finished (a re-verification, months later): the verdict facet follows. Nothing
    happens for a version that is not indexed."""
    if SearchDocument.objects.filter(pk=version_pk).update(verdict=_verdicts([version_pk]).get(version_pk, "")):
        search_generation_bump()


def search_generation_bump() -> None:
    """Make the facet counts cached so far stale (engine.py keys them by this generation). Call in the
    transaction that changes which documents match or how they count: the bump commits with the change, so no
    search can cache counts of the old index under the new generation. The views (the `mostviewed` sort) are not
    counted, so their refresh does not bump it."""
    if not SearchIndexState.objects.filter(pk=1).update(generation=F("generation") + 1):
        # A flushed database: the row is back, at a generation no earlier row can have had cached entries under.
        SearchIndexState.objects.get_or_create(pk=1, defaults={"generation": time.time_ns()})


def search_views_refresh(*, record_ids: Iterable[int]) -> None:
    """Copy the records' unique views (their UsageCount without a version) onto all their documents, in one
    UPDATE that leaves alone the rows already right; the usage aggregation calls it for the records it counted."""
    record_views = Coalesce(Subquery(UsageCount.objects.filter(record_id=OuterRef("record_id"), version=None)
                                     .values("unique_views")[:1]), Value(0))
    (SearchDocument.objects.filter(record_id__in=list(record_ids)).exclude(views=record_views)
     .update(views=record_views))


def version_listener(version: Version, **details) -> None:
    """The listener of version_published, version_corrected and version_withdrawn (the details, such as a
    correction's fields, do not matter: the whole document is written again)."""
    search_index_version(version=version)


# --- Building documents ----------------------------------------------------------------------------------

def _load(pks: list[int]) -> list[Version]:
    notebook_files = VersionFile.objects.filter(path=F("version__notebook_path")).select_related("blob")
    return list(Version.objects.filter(pk__in=pks).select_related("record")
                .prefetch_related("creators", Prefetch("files", queryset=notebook_files, to_attr="notebook_files")))


def _write_documents(versions: list[Version]) -> None:
    pks = [v.pk for v in versions]
    communities = hooks.communities_of(pks)
    verdicts = _verdicts(pks)
    views = dict(UsageCount.objects.filter(record_id__in={v.record_id for v in versions}, version=None)
                 .values_list("record_id", "unique_views"))
    documents, terms = [], []
    for version in versions:
        document = _document(version, community=communities.get(version.pk, ""), verdict=verdicts.get(version.pk, ""))
        document.views = views.get(version.record_id, 0)
        documents.append(document)
        terms.extend(_terms(version, document))
    SearchDocument.objects.bulk_create(documents, batch_size=500)
    SearchTerm.objects.bulk_create(terms, batch_size=2000)


def _document(version: Version, *, community: str, verdict: str) -> SearchDocument:
    creators = list(version.creators.all())
    keywords = [str(k) for k in version.keywords or []]
    published = version.published_at
    access = effective_access(version)
    # Closed files are closed to search too: their words would tell what the notebook holds.
    notebook_text = _notebook_text(getattr(version, "notebook_files", [])) if access == FileAccess.OPEN else ""
    return SearchDocument(
        version=version, record_id=version.record_id, number=version.number,
        title=version.title, description=version.description,
        creators_text=" ; ".join(c.name for c in creators), keywords_text=" ; ".join(keywords),
        notebook_text=notebook_text,
        creators=[{"name": c.name, "orcid": c.orcid, "affiliation": c.affiliation} for c in creators],
        keywords=keywords, doi=version.doi.lower(), concept_doi=version.record.concept_doi.lower(),
        community=community, resource_type=version.resource_type, verdict=verdict, license=version.license,
        publication_year=published.year if published else None, published_at=published,
        access=access, embargo_until=version.embargo_until if access == FileAccess.EMBARGOED else None,
    )


def _terms(version: Version, document: SearchDocument) -> list[SearchTerm]:
    values: dict[tuple[str, str], str] = {}
    for keyword in document.keywords:
        values.setdefault(("keyword", keyword.lower()[:300]), keyword[:300])
    for creator in version.creators.all():
        values.setdefault(("creator", creator.name.lower()[:300]), creator.name[:300])
        if creator.orcid:
            values.setdefault(("orcid", creator.orcid.upper()), creator.name[:300])
    return [SearchTerm(document=document, field=field, value=value, label=label)
            for (field, value), label in values.items()]


def _verdicts(pks: Iterable[int]) -> dict[int, str]:
    """The verdict of each version's latest finished run (a re-verification replaces the submission's)."""
    latest = (ExecutionRun.objects.filter(version=OuterRef("pk"), status=ExecutionRun.Status.FINISHED)
              .order_by("-finished_at", "-pk").values("verdict")[:1])
    return {pk: verdict or "" for pk, verdict in
            Version.objects.filter(pk__in=list(pks)).annotate(verdict=Subquery(latest)).values_list("pk", "verdict")}


def _notebook_text(notebook_files: list[VersionFile]) -> str:
    """The markdown and code cells of the version's notebook, as far as it can be read; never fails."""
    if not notebook_files:
        return ""
    blob = notebook_files[0].blob
    if blob.size > settings.SEARCH_NOTEBOOK_MAX_BYTES:
        return ""
    try:
        with storage.open_blob(blob.storage_key) as handle:
            notebook = json.load(handle)
        cells = notebook.get("cells", []) if isinstance(notebook, dict) else []
        sources = ("".join(c["source"]) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                   for c in cells if isinstance(c, dict) and c.get("cell_type") in ("markdown", "code"))
        return "\n".join(sources)[:settings.SEARCH_NOTEBOOK_MAX_CHARS]
    except Exception:  # noqa: BLE001 - an unreadable notebook is indexed by its metadata; publishing goes on
        logger.warning("Notebook %s could not be read for the search index", blob.storage_key, exc_info=True)
        return ""


def _refresh_latest(*, record_ids: list[int] | None) -> None:
    """Flag the highest-numbered indexed version of each record (of `record_ids`, or of all) as its latest."""
    documents = SearchDocument.objects.all() if record_ids is None else SearchDocument.objects.filter(
        record_id__in=record_ids)
    newest = (SearchDocument.objects.filter(record_id=OuterRef("record_id")).values("record_id")
              .annotate(top=Max("number")).values("top"))
    documents.exclude(number=Subquery(newest)).filter(is_latest=True).update(is_latest=False)
    documents.filter(number=Subquery(newest), is_latest=False).update(is_latest=True)
