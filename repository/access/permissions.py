"""Who may ask for access and who decides: small predicates shared by the services, the API and the web views.

Reading files is `policy.can_read_files`; these rules are about the requests, grants and share links around it.
"""

from __future__ import annotations

from repository.access.policy import effective_access
from repository.models import FileAccess, Record, Version
from repository.permissions import is_owner

# The versions a share link opens besides restricted ones: the draft and the version in review (policy.py).
SHAREABLE_UNPUBLISHED_STATES = (Version.State.DRAFT, Version.State.IN_REVIEW)
LIVE_ACCEPTED_STATES = (Version.State.PUBLISHING, Version.State.PUBLISHED)


def can_manage_access(user, record: Record) -> bool:
    """The owners answer access requests, revoke grants and make share links (as only they link GitLab)."""
    return is_owner(user, record)


def restricted_versions(record: Record) -> list[Version]:
    """The record's live accepted versions whose files are restricted today, newest first: what a grant opens.
    Embargoed versions are not among them: an embargo is closed to everyone until its day, grants included."""
    versions = record.versions.filter(state__in=LIVE_ACCEPTED_STATES, access_files=FileAccess.RESTRICTED)
    return [v for v in versions.order_by("-number") if effective_access(v) == FileAccess.RESTRICTED]


def shareable_draft(record: Record) -> Version | None:
    """The record's draft or version in review, which a share link lets its holders read."""
    return record.versions.filter(state__in=SHAREABLE_UNPUBLISHED_STATES).first()


def can_request_access(user, record: Record) -> bool:
    """A signed-in reader who is not an owner may ask, when some live version of the record is restricted (an
    earlier version may be restricted while the latest is open: the request is for the record, as grants are)."""
    return bool(user and user.is_authenticated) and not is_owner(user, record) and bool(restricted_versions(record))
