"""Submitting a draft for review, and what a draft still lacks before it can be (shown on the draft page)."""

from django.db import transaction
from django.utils import timezone

from repository.errors import Conflict, InvalidInput
from repository.models import Upload, Version
from repository.services.audit import audit_event_append
from repository.services.drafts import draft_reference_problems
from repository.services.runs import run_request


def draft_missing_for_submission(version: Version) -> list[str]:
    missing = []
    if not version.title:
        missing.append("a title")
    if not version.description:
        missing.append("a description")
    if not version.creators.all():
        missing.append("at least one creator")
    if not version.license:
        missing.append("a license")
    if not version.container_image:
        missing.append("a container image pinned by digest")
    if not version.notebook_path:
        missing.append("a notebook (.ipynb) file")
    under_way = [upload.path for upload in version.uploads.all() if upload.state in Upload.ACTIVE_STATES]
    if under_way:
        missing.append("the uploads under way to finish (" + ", ".join(sorted(under_way)[:5]) + ")")
    return missing


def version_submit(*, version: Version, actor) -> Version:
    """Submit a complete draft for review: it stops being editable and a verification run is queued.

    The moderation workflow (ReviewRequest) builds on this; until it exists the version waits `in_review`.
    """
    with transaction.atomic():
        version = Version.objects.select_for_update().get(pk=version.pk)
        if version.state != Version.State.DRAFT:
            raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}, not a draft.")
        missing = draft_missing_for_submission(version)
        if missing:
            raise InvalidInput("The draft is not complete: it needs " + ", ".join(missing) + ".",
                               field_errors={"missing": missing})
        reference_problems = draft_reference_problems(version)
        if reference_problems:
            raise InvalidInput("A data reference names a file of a version that is no longer published.",
                               field_errors=reference_problems)
        version.state = Version.State.IN_REVIEW
        version.submitted_at = timezone.now()
        version.save(update_fields=["state", "submitted_at", "updated"])
        audit_event_append(actor=actor, action="version.submit", version=version)
        run_request(version=version, requested_by=actor, supersede=True)
    return version
