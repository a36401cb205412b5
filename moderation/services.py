"""Review requests: submitting a draft to a community, acting on the request, commenting.

Every write goes through moderation/workflow.py for state changes and appends to the request's timeline.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from moderation import notifications, workflow
from moderation.diff import cell_diff_queue
from moderation.models import Community, ReviewEvent, ReviewRequest
from moderation.permissions import can_comment, can_moderate
from repository.errors import Conflict, InvalidInput, NotFound, PermissionDenied, TooManyRequests
from repository.models import Version
from repository.services.submission import version_submit

MAX_COMMENT_LENGTH = 20_000
CHECKLIST_ITEMS = {
    "in_scope": "In scope for the community",
    "not_duplicate": "Not a duplicate of an existing record",
    "open_formats": "Files in open formats",
    "license": "License is suitable",
    "metadata_complete": "Metadata complete and correct",
    "reproducible": "Reproducibility acceptable",
}


def community_default() -> Community:
    community, _ = Community.objects.get_or_create(
        slug=settings.MODERATION_DEFAULT_COMMUNITY,
        defaults={"name": settings.MODERATION_DEFAULT_COMMUNITY.replace("-", " ").title()},
    )
    return community


def community_get(slug: str) -> Community:
    community = Community.objects.filter(slug=slug).first()
    if community is None:
        raise InvalidInput(f"No community '{slug}'.", field_errors={"community": ["No such community."]})
    return community


def _check_submission_limits(user) -> None:
    open_count = ReviewRequest.objects.filter(submitted_by=user, state__in=ReviewRequest.OPEN_STATES).count()
    if open_count >= settings.MODERATION_MAX_OPEN_SUBMISSIONS:
        raise TooManyRequests(f"You have {open_count} submissions in review, the most allowed at once; wait for a "
                              "decision on one of them.")
    since = timezone.now() - timedelta(days=1)
    today = ReviewRequest.objects.filter(submitted_by=user, created__gte=since).count()
    if today >= settings.MODERATION_MAX_SUBMISSIONS_PER_DAY:
        raise TooManyRequests(f"You have submitted {today} times in the last 24 hours, the most allowed; "
                              "please try again tomorrow.")


def review_submit(*, version: Version, actor, community: Community | None = None) -> ReviewRequest:
    """Submit a draft for review to `community` (the default one if None): the version goes into review,
    a verification run is queued, the community's moderators are told and the notebook diff they will read is
    prepared."""
    community = community or community_default()
    with transaction.atomic():
        open_request = ReviewRequest.objects.filter(version=version, state__in=ReviewRequest.OPEN_STATES).first()
        if open_request is not None:
            state = open_request.get_state_display().lower()
            raise Conflict(f"This version already has an open review request ({state}); resubmit it there "
                           "instead of submitting again.")
        _check_submission_limits(actor)
        version = version_submit(version=version, actor=actor)
        review = ReviewRequest.objects.create(version=version, community=community, submitted_by=actor)
        ReviewEvent.objects.create(request=review, kind=ReviewEvent.Kind.STATE_CHANGE, actor=actor,
                                   from_state="", to_state=review.state)
        notifications.notify_submitted(review)
        cell_diff_queue(version)
    return review


def review_submit_by_slug(*, version: Version, actor, community: str | None = None) -> ReviewRequest:
    """`review_submit` to the community named by its slug (the default one if None): the core's
    `hooks.submit_for_review`, behind the draft page's Submit button and `POST .../draft/actions/submit`."""
    return review_submit(version=version, actor=actor, community=community_get(community) if community else None)


ACTION_NOTICES = {"accept": "Accepted", "request_changes": "Changes requested", "decline": "Declined"}


def review_act(*, request_id: int, action: str, actor, comment: str = "",
               checklist: list[str] | None = None) -> ReviewRequest:
    """Make a workflow move; a moderator's ticked checklist items are kept with the request."""
    with transaction.atomic():
        review = workflow.transition(request_id=request_id, action=action, actor=actor, comment=comment)
        if checklist is not None and can_moderate(actor, review):
            review.checklist = {item: True for item in checklist if item in CHECKLIST_ITEMS}
            review.save(update_fields=["checklist", "updated"])
        if action in ACTION_NOTICES:
            notifications.notify_authors(review, actor=actor, what=ACTION_NOTICES[action], comment=comment)
        elif action == "resubmit":
            notifications.notify_submitted(review)
            cell_diff_queue(review.version)
    return review


def review_comment(*, request_id: int, actor, comment: str) -> ReviewEvent:
    comment = (comment or "").strip()
    if not comment:
        raise InvalidInput("The comment is empty.", field_errors={"comment": ["Write a comment."]})
    if len(comment) > MAX_COMMENT_LENGTH:
        raise InvalidInput(f"A comment may have at most {MAX_COMMENT_LENGTH} characters.",
                           field_errors={"comment": ["Too long."]})
    with transaction.atomic():
        review = ReviewRequest.objects.select_for_update().select_related("version__record", "community").filter(
            pk=request_id).first()
        if review is None:
            raise NotFound("No such review request.")
        if not can_comment(actor, review):
            raise PermissionDenied("Only the authors and the community's moderators can comment.")
        event = ReviewEvent.objects.create(request=review, kind=ReviewEvent.Kind.COMMENT, actor=actor,
                                           comment=comment)
        notifications.notify_authors(review, actor=actor, what="New comment", comment=comment)
    return event
