"""Moving a submitted version along: published on acceptance, back to draft when sent back or withdrawn from
review. Called by the moderation workflow inside its transaction; each locks the version row itself.

Publishing makes the version immutable at once and `publishing`; it becomes `published` when the registrar
confirms its DOI (repository/services/dois.py).
"""

from django.db import transaction
from django.utils import timezone

from repository import hooks
from repository.errors import Conflict
from repository.models import Version
from repository.services.audit import audit_event_append
from repository.services.dois import doi_publish_version
from repository.services.submission import version_submit


def _locked(version: Version) -> Version:
    return Version.objects.select_for_update().select_related("record").get(pk=version.pk)


@transaction.atomic
def version_publish(*, version: Version, actor) -> Version:
    version = _locked(version)
    if version.state != Version.State.IN_REVIEW:
        raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}; only a version in "
                       "review can be published.")
    version.state = Version.State.PUBLISHING
    version.published_at = version.public_changed_at = timezone.now()
    version.save(update_fields=["state", "published_at", "public_changed_at", "updated"])
    doi_publish_version(version)
    hooks.send("version_published", version=version)  # e.g. the GitLab mirror, queued for after the commit
    audit_event_append(actor=actor, action="version.publish", version=version, data={"doi": version.doi})
    return version


@transaction.atomic
def version_reopen(*, version: Version, actor) -> Version:
    """A version in review becomes an editable draft again (changes requested, declined, cancelled)."""
    version = _locked(version)
    if version.state == Version.State.DRAFT:
        return version  # already back with its authors (declined or cancelled after changes were requested)
    if version.state != Version.State.IN_REVIEW:
        raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}, not in review.")
    version.state = Version.State.DRAFT
    version.save(update_fields=["state", "updated"])
    audit_event_append(actor=actor, action="version.reopen", version=version)
    return version


def version_resubmit(*, version: Version, actor) -> Version:
    """After changes: the same checks as the first submission, and a new verification run."""
    return version_submit(version=version, actor=actor)
