"""Who may read a version's files and notebook content. The one place that decides; every route that serves
bytes or notebook content (downloads, "download all", the rendered notebook, the public report's outputs, the
executed notebook, exports that link files, the GitLab mirror, staging of data references) asks it.

- Open files: everyone, once the version is accepted (drafts stay with their owners and moderators).
- Embargoed: closed until `embargo_until`, then open (on that day, whether or not the lift job has run yet: the
  job records the change and updates DataCite). Until then the owners, the version's moderators and admins.
- Restricted: the owners, moderators, admins, people with a live grant on the record, and holders of a live
  share link to the record.
- Drafts and versions in review: as before (owners; moderators once submitted), plus share-link holders.
- Withdrawn: no one through the public routes (the tombstone); owners and moderators keep their own views.
"""

from __future__ import annotations

import datetime

from django.utils import timezone

from repository.models import FileAccess, Version
from repository.permissions import can_view_draft, is_owner, moderates_version

# The OpenAIRE vocabulary that Dublin Core's dc:rights and DataCite's rightsList carry.
COAR_RIGHTS_URI = {
    FileAccess.OPEN: "info:eu-repo/semantics/openAccess",
    FileAccess.EMBARGOED: "info:eu-repo/semantics/embargoedAccess",
    FileAccess.RESTRICTED: "info:eu-repo/semantics/restrictedAccess",
}


def today() -> datetime.date:
    return timezone.now().date()


def effective_access(version: Version, *, on: datetime.date | None = None) -> str:
    """The access state readers get on the day `on`: an embargo whose day has come is open."""
    if version.access_files == FileAccess.EMBARGOED and version.embargo_until and \
            version.embargo_until <= (on or today()):
        return FileAccess.OPEN
    return version.access_files


def files_are_open(version: Version, *, on: datetime.date | None = None) -> bool:
    return effective_access(version, on=on) == FileAccess.OPEN


def is_privileged(user, version: Version) -> bool:
    """Those who always read a version's files: its owners, its moderators (global or its community's), admins."""
    if not (user and user.is_authenticated):
        return False
    return user.is_superuser or is_owner(user, version.record) or moderates_version(user, version)


def live_grants(user, record, *, on: datetime.date | None = None):
    """The grants that let `user` read `record`'s restricted files on the day `on`: not revoked, not ended."""
    from repository.access.models import AccessGrant  # the access app's table; this module is imported early

    return AccessGrant.objects.filter(record=record, user=user, revoked_at__isnull=True).exclude(
        until__lt=on or today())


def has_live_grant(user, record, *, on: datetime.date | None = None) -> bool:
    if not (user and user.is_authenticated):
        return False
    return live_grants(user, record, on=on).exists()


def can_read_files(user, version: Version, *, shared_record_ids: frozenset[int] = frozenset(),
                   on: datetime.date | None = None) -> bool:
    """Whether `user` (holding share links to the records in `shared_record_ids`) may read the files and the
    notebook content of `version`."""
    shared = version.record_id in shared_record_ids
    if version.state in (Version.State.DRAFT, Version.State.IN_REVIEW):
        return shared or can_view_draft(user, version)
    if version.state == Version.State.WITHDRAWN:
        return is_privileged(user, version)
    # Accepted: publishing or published.
    access = effective_access(version, on=on)
    if access == FileAccess.OPEN or is_privileged(user, version):
        return True
    if access == FileAccess.RESTRICTED:
        return shared or has_live_grant(user, version.record, on=on)
    return False  # embargoed: only the privileged until the day
