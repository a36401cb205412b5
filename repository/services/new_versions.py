"""Starting a new version of a published record, and discarding a draft.

A new version starts as a copy of the latest published version's metadata, files and file access. Files are
shared by content hash (new VersionFile rows pointing at the same Blob), never copied. It gets its own reserved
DOI.
"""

from django.db import transaction
from django.db.models import Max

from repository.access.policy import effective_access
from repository.errors import Conflict
from repository.models import Creator, DataReference, FileAccess, Record, RelatedIdentifier, Version, VersionFile
from repository.services.audit import audit_event_append
from repository.services.dois import doi_discard_for_draft, doi_reserve_for_draft
from repository.services.drafts import require_owner

COPIED_FIELDS = ("title", "description", "resource_type", "license", "keywords", "funding", "container_image",
                 "notebook_path", "comparison_tolerance")


@transaction.atomic
def version_new_draft(*, record: Record, actor) -> Version:
    """A draft of the next version, prefilled from the latest published one. The version label is left for the
    author to set, as Zenodo does."""
    record = Record.objects.select_for_update().get(pk=record.pk)
    latest = (record.versions.filter(state__in=(Version.State.PUBLISHING, Version.State.PUBLISHED))
              .order_by("-number").first())
    if latest is None:
        raise Conflict("This record has no published version to start a new version from.")
    require_owner(actor, latest)
    if latest.state == Version.State.PUBLISHING:
        # Its DOI, which the new version's metadata cites as the version it follows, is not registered yet; and
        # starting from the version before it would silently drop what was just accepted.
        raise Conflict(f"Version {latest.number} was accepted and its DOI is being registered; start the new version "
                       "once it is published (usually within minutes).")
    unpublished = record.versions.filter(state__in=Version.UNPUBLISHED_STATES).first()
    if unpublished is not None:
        raise Conflict(f"Version {unpublished.number} is still {unpublished.get_state_display().lower()}; "
                       "finish or discard it before starting another.")
    number = (record.versions.aggregate(Max("number"))["number__max"] or 0) + 1
    draft = Version.objects.create(record=record, number=number, created_by=actor,
                                   **{field: getattr(latest, field) for field in COPIED_FIELDS},
                                   **_access_copied(latest))
    _copy_rows(latest, draft)
    doi_reserve_for_draft(draft)
    audit_event_append(actor=actor, action="version.new_draft", version=draft,
                       data={"from_version": latest.number, "doi": draft.doi})
    return draft


def _access_copied(latest: Version) -> dict:
    """The new version's files are closed as the latest version's are (the same files, mostly); an embargo that
    has ended, even if the lift job has not recorded it yet, is not carried over."""
    if effective_access(latest) == FileAccess.OPEN:
        return {"access_files": FileAccess.OPEN, "embargo_until": None, "embargo_reason": ""}
    return {"access_files": latest.access_files, "embargo_until": latest.embargo_until,
            "embargo_reason": latest.embargo_reason}


def _copy_rows(source: Version, draft: Version) -> None:
    for model in (Creator, RelatedIdentifier, DataReference, VersionFile):
        rows = list(model.objects.filter(version=source).order_by("pk"))
        for row in rows:
            row.pk = None
            row.version = draft
        model.objects.bulk_create(rows)


@transaction.atomic
def draft_discard(*, version: Version, actor) -> Record | None:
    """Delete a draft that was never published, and its draft DOI. The first draft of a record takes the record
    with it; returns the record when it remains. The uploaded bytes stay until storage's garbage collection."""
    version = Version.objects.select_for_update().select_related("record").get(pk=version.pk)
    require_owner(actor, version)
    if version.state != Version.State.DRAFT:
        raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}; only a draft that is "
                       "not in review can be discarded.")
    doi_discard_for_draft(version)
    record = version.record
    audit_event_append(actor=actor, action="draft.discard", record=record,
                       data={"version": version.number, "doi": version.doi})
    version.delete()
    if not record.versions.exists():
        record.delete()
        return None
    return record
