"""Who may act on a review request. Used by the workflow, the API and the web pages alike.

Who moderates is the core's one function, `repository.permissions.moderates_version`; this module fills its hook
with the community rule (`version_moderated_by`) and builds the review rules on top of it.
"""

from moderation.models import Community, ReviewRequest
from repository.models import Version
from repository.permissions import is_global_moderator, is_owner

__all__ = ["can_comment", "can_moderate", "can_view_request", "is_author", "is_global_moderator", "moderates",
           "version_moderated_by"]


def moderates(user, community: Community) -> bool:
    if not (user and user.is_authenticated):
        return False
    return is_global_moderator(user) or community.moderators.filter(pk=user.pk).exists()


def version_moderated_by(user, version: Version) -> bool:
    """The hook behind `moderates_version`: a moderator of a community the version was submitted to."""
    return ReviewRequest.objects.filter(version=version, community__moderators=user).exists()


def is_author(user, review: ReviewRequest) -> bool:
    return is_owner(user, review.version.record)


def can_moderate(user, review: ReviewRequest) -> bool:
    # Nobody moderates their own work, whatever groups they are in.
    return moderates(user, review.community) and not is_author(user, review)


def can_view_request(user, review: ReviewRequest) -> bool:
    return is_author(user, review) or moderates(user, review.community)


def can_comment(user, review: ReviewRequest) -> bool:
    return is_author(user, review) or can_moderate(user, review)
