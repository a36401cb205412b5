"""Who may do what. Small predicates shared by the API and the web views."""

from repository.models import Record, Version


def is_owner(user, record: Record) -> bool:
    return bool(user and user.is_authenticated) and record.owners.filter(pk=user.pk).exists()


def can_view_draft(user, version: Version) -> bool:
    # Drafts are private to their owners; moderators get access through review requests (moderation app).
    return is_owner(user, version.record)


def can_edit_draft(user, version: Version) -> bool:
    return can_view_draft(user, version) and version.is_editable
