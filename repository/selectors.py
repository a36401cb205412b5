"""Reads that cross relations. Callers that may not see a thing get NotFound, never a hint it exists."""

from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery, Sum

from repository.errors import NotFound
from repository.models import AuditEvent, ExecutionRun, Upload, Version, VersionFile
from repository.permissions import can_view_draft, can_view_run, is_owner


def draft_get_for_user(*, record_id: str, user) -> Version:
    """The record's unpublished version (a draft, possibly in review), if `user` may see it; NotFound otherwise."""
    version = (
        Version.objects.select_related("record")
        .filter(record__public_id=record_id, state__in=Version.UNPUBLISHED_STATES)
        .first()
    )
    if version is None or not can_view_draft(user, version):
        raise NotFound(f"No draft of record '{record_id}' that you can see.")
    return version


def draft_with_details(version: Version) -> Version:
    """Reload a version with everything its representation lists, in a fixed number of queries."""
    return (
        Version.objects.select_related("record")
        .prefetch_related(
            "creators",
            "related_identifiers",
            "data_references",
            "uploads",
            Prefetch("files", queryset=VersionFile.objects.select_related("blob")),
        )
        .get(pk=version.pk)
    )


def records_list_for_user(*, user) -> QuerySet[Version]:
    """The newest version of each record `user` owns, with file count and size, for "My uploads"."""
    newest = Version.objects.filter(record=OuterRef("record")).order_by("-number").values("pk")[:1]
    return (
        Version.objects.filter(record__owners=user, pk=Subquery(newest))
        .select_related("record")
        .annotate(file_count=Count("files"), total_size=Sum("files__blob__size"))
        .order_by("-updated")
    )


def run_get_for_user(*, run_id, user) -> ExecutionRun:
    run = ExecutionRun.objects.select_related("version__record", "executed_notebook").filter(run_id=run_id).first()
    if run is None or not can_view_run(user, run):
        raise NotFound("No verification run with this id that you can see.")
    return run


def runs_list_for_version(*, version: Version) -> QuerySet[ExecutionRun]:
    return version.runs.select_related("version__record").defer("logs", "report")


CREATOR_FIELDS = ("name", "given_name", "family_name", "orcid", "affiliation", "affiliation_ror")
REFERENCE_FIELDS = ("kind", "identifier", "query", "target_path", "sha256", "size", "title")


def version_metadata(version: Version) -> dict:
    """A version's metadata in the shape `draft_update` takes: the API's representation, what a new version
    starts from and what an audited correction records as before and after."""
    return {
        "title": version.title,
        "description": version.description,
        "resource_type": version.resource_type,
        "version_label": version.version_label,
        "license": version.license,
        "keywords": version.keywords,
        "funding": version.funding,
        "container_image": version.container_image,
        "notebook_path": version.notebook_path,
        "comparison_tolerance": version.comparison_tolerance,
        "creators": [{f: getattr(c, f) for f in CREATOR_FIELDS} for c in version.creators.all()],
        "related_identifiers": [{"identifier": r.identifier, "scheme": r.scheme, "relation": r.relation}
                                for r in version.related_identifiers.all()],
        "data_references": [{f: getattr(d, f) for f in REFERENCE_FIELDS} for d in version.data_references.all()],
        "access": version_access(version),
    }


def version_access(version: Version) -> dict:
    """Who may read the version's files, as the API shows it (and as `draft_update` takes it): the stored state,
    not the effective one (an embargo whose day has come shows until the lift job records it as open)."""
    return {
        "files": version.access_files,
        "embargo_until": version.embargo_until.isoformat() if version.embargo_until else None,
        "embargo_reason": version.embargo_reason,
    }


def versions_public(*, record_id: str) -> list[Version]:
    """Every version of a record a reader may know of, newest first: accepted ones, including those whose DOI
    is still being registered (the DOI must never point at a page that does not exist yet) and withdrawn ones."""
    return list(Version.objects.filter(record__public_id=record_id, state__in=Version.ACCEPTED_STATES)
                .select_related("record").order_by("-number"))


def version_get_public(*, record_id: str, number: int | None = None) -> tuple[Version, list[Version]]:
    """The version a landing page shows (the latest one not withdrawn when `number` is None, else that one,
    possibly withdrawn) with all the record's public versions; NotFound when there is none."""
    versions = versions_public(record_id=record_id)
    if number is None:
        version = next((v for v in versions if v.state != Version.State.WITHDRAWN), versions[0] if versions else None)
    else:
        version = next((v for v in versions if v.number == number), None)
    if version is None:
        raise NotFound(f"No published version of record '{record_id}'" + (f" numbered {number}." if number else "."))
    return version, versions


def versions_list_public_changes() -> QuerySet[Version]:
    """Every version the public has seen, live or withdrawn: the accepted ones, which are exactly those with a
    datestamp (`public_changed_at`, when what harvesters see last changed). The base of OAI-PMH's item lists."""
    return (Version.objects.filter(public_changed_at__isnull=False, state__in=Version.ACCEPTED_STATES)
            .select_related("record"))


def record_corrections(record) -> list[dict]:
    """Every metadata correction of the record's published versions, newest first: when, which version, which
    fields, and the reason given. Public, like the metadata itself (who corrected is for the moderators)."""
    events = (AuditEvent.objects.filter(record=record, action="version.correct").select_related("version")
              .order_by("-created", "-id"))
    return [{"created": event.created, "version_number": event.version.number if event.version else None,
             "fields": event.data.get("fields") or changed_fields(event.data.get("before") or {},
                                                                   event.data.get("after") or {}),
             "reason": event.data.get("reason", "")} for event in events]


def changed_fields(before: dict, after: dict) -> list[str]:
    """The metadata fields a correction changed, in the metadata's order."""
    return [field for field in after if before.get(field) != after.get(field)]
def upload_get_for_user(*, record_id: str, upload_id, user) -> Upload:
    """A direct upload of the record's draft, if `user` owns the record; NotFound otherwise."""
    version = draft_get_for_user(record_id=record_id, user=user)
    upload = version.uploads.select_related("version__record", "created_by").filter(upload_id=upload_id).first()
    if upload is None or not is_owner(user, version.record):
        raise NotFound(f"The draft of '{record_id}' has no upload {upload_id} of yours.")
    return upload


def uploads_list_for_draft(*, version: Version) -> list[Upload]:
    """The draft's direct uploads that are not (yet) files: under way, being checked, or failed."""
    return list(version.uploads.exclude(state=Upload.State.READY).select_related("version__record"))
