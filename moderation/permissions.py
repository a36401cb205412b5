"""Who may act on a review request. Used by the workflow, the API and the web pages alike."""

from moderation.models import Community, ReviewRequest
from repository.permissions import MODERATORS_GROUP, is_owner


def is_global_moderator(user) -> bool:
    if not (user and user.is_authenticated):
        return False
    return user.is_superuser or user.groups.filter(name=MODERATORS_GROUP).exists()


def moderates(user, community: Community) -> bool:
    if not (user and user.is_authenticated):
        return False
    return is_global_moderator(user) or community.moderators.filter(pk=user.pk).exists()


def is_author(user, review: ReviewRequest) -> bool:
    return is_owner(user, review.version.record)


def can_moderate(user, review: ReviewRequest) -> bool:
    # Nobody moderates their own work, whatever groups they are in.
    return moderates(user, review.community) and not is_author(user, review)


def can_view_request(user, review: ReviewRequest) -> bool:
    return is_author(user, review) or moderates(user, review.community)


def can_comment(user, review: ReviewRequest) -> bool:
    return is_author(user, review) or can_moderate(user, review)
