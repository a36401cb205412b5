"""Who may do what. Small predicates shared by the API, the web views and the services.

Who moderates a version is decided in one place, `moderates_version`: the global moderators (and admins), and
whoever the moderation app says moderates it (the moderators of the community it was submitted to). The core
knows nothing of communities; moderation fills `repository.hooks.moderates_version` at start-up.
"""

from repository import hooks
from repository.models import ExecutionRun, Record, Version

MODERATORS_GROUP = "moderators"


def is_owner(user, record: Record) -> bool:
    return bool(user and user.is_authenticated) and record.owners.filter(pk=user.pk).exists()


def is_global_moderator(user) -> bool:
    """Members of the global `moderators` group, and admins: they moderate every community."""
    if not (user and user.is_authenticated):
        return False
    return user.is_superuser or user.groups.filter(name=MODERATORS_GROUP).exists()


def moderates_version(user, version: Version) -> bool:
    """Whether `user` moderates `version`: a global moderator, or one the moderation app names (its community's).

    Being an owner does not matter here; callers that decide on a review add "and not its author".
    """
    if not (user and user.is_authenticated):
        return False
    return is_global_moderator(user) or hooks.moderates_version(user, version)


def can_view_draft(user, version: Version) -> bool:
    # Drafts are private to their owners; their moderators see them once submitted.
    if is_owner(user, version.record):
        return True
    return version.state != Version.State.DRAFT and moderates_version(user, version)


def can_edit_draft(user, version: Version) -> bool:
    return is_owner(user, version.record) and version.is_editable


def can_correct_metadata(user, record: Record) -> bool:
    """Who may correct the metadata of a record's published versions (services.published also checks the
    version's state: a withdrawn one stays as it was)."""
    return bool(user and user.is_authenticated) and (user.is_superuser or is_owner(user, record))


def can_request_run(user, version: Version) -> bool:
    return can_view_draft(user, version) and version.state in Version.UNPUBLISHED_STATES


# Versions whose verification is public: accepted and live. A withdrawn version's runs go back to being private
# with its files (the executed notebook holds their outputs).
PUBLIC_RUN_STATES = (Version.State.PUBLISHING, Version.State.PUBLISHED)


def is_public_run(run: ExecutionRun) -> bool:
    """The reproducibility report of an accepted version is for everyone, with its executed notebook and logs;
    runs of drafts and of versions in review stay with the owners and moderators."""
    return run.status == ExecutionRun.Status.FINISHED and run.version.state in PUBLIC_RUN_STATES


def can_view_run(user, run: ExecutionRun) -> bool:
    return is_public_run(run) or can_view_draft(user, run.version)


def can_cancel_run(user, run: ExecutionRun) -> bool:
    """Whoever may ask for a run may stop it: the owners, and moderators once the version is submitted."""
    return can_request_run(user, run.version)


def can_link_gitlab(user, record: Record) -> bool:
    """Linking a GitLab project makes tags there into version drafts: the record's owners only."""
    return is_owner(user, record)
