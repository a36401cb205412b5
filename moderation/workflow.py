"""The review state machine: one transition table and one `transition()` that applies it.

    submitted ──request_changes──> changes_requested ──resubmit──> resubmitted
        │  └──accept / decline                 │                      │
        │                                      └──decline / cancel    └──accept / request_changes / decline
        └──cancel
    accepted, declined and cancelled are final.

`transition()` locks the request row, checks that the actor may make the move from the current state, saves
the new state, appends a ReviewEvent and moves the version along, all in one transaction: two moderators
accepting at the same moment produce one publication and one Conflict.
"""

from dataclasses import dataclass
from typing import Callable

from django.db import transaction
from django.utils import timezone

from moderation.models import ReviewEvent, ReviewRequest
from moderation.permissions import can_moderate, is_author
from repository.errors import Conflict, InvalidInput, PermissionDenied
from repository.services import versions as version_services

S = ReviewRequest.State
MODERATOR, AUTHOR = "moderator", "author"


@dataclass(frozen=True)
class Transition:
    sources: tuple[str, ...]
    target: str
    role: str
    comment_required: str | None  # the message when a comment is required, else None
    on_version: Callable  # what happens to the version, inside the same transaction


def _publish(review: ReviewRequest, actor) -> None:
    version_services.version_publish(version=review.version, actor=actor)


def _reopen(review: ReviewRequest, actor) -> None:
    version_services.version_reopen(version=review.version, actor=actor)


def _resubmit(review: ReviewRequest, actor) -> None:
    version_services.version_resubmit(version=review.version, actor=actor)


TRANSITIONS: dict[str, Transition] = {
    "accept": Transition((S.SUBMITTED, S.RESUBMITTED), S.ACCEPTED, MODERATOR, None, _publish),
    "request_changes": Transition((S.SUBMITTED, S.RESUBMITTED), S.CHANGES_REQUESTED, MODERATOR,
                                  "Say what needs to change.", _reopen),
    "decline": Transition((S.SUBMITTED, S.RESUBMITTED, S.CHANGES_REQUESTED), S.DECLINED, MODERATOR,
                          "Give the reason for declining.", _reopen),
    "resubmit": Transition((S.CHANGES_REQUESTED,), S.RESUBMITTED, AUTHOR, None, _resubmit),
    "cancel": Transition((S.SUBMITTED, S.RESUBMITTED, S.CHANGES_REQUESTED), S.CANCELLED, AUTHOR, None, _reopen),
}
FINAL_STATES = (S.ACCEPTED, S.DECLINED, S.CANCELLED)


def allowed_actions(user, review: ReviewRequest) -> list[str]:
    """The actions `user` could take on `review` now (for buttons and API hints)."""
    return [name for name, move in TRANSITIONS.items()
            if review.state in move.sources and _may(user, review, move.role)]


def _may(user, review: ReviewRequest, role: str) -> bool:
    return can_moderate(user, review) if role == MODERATOR else is_author(user, review)


def transition(*, request_id: int, action: str, actor, comment: str = "") -> ReviewRequest:
    move = TRANSITIONS.get(action)
    if move is None:
        raise InvalidInput(f"Unknown action '{action}'; one of: {', '.join(TRANSITIONS)}.",
                           field_errors={"action": ["Unknown action."]})
    comment = (comment or "").strip()
    with transaction.atomic():
        review = ReviewRequest.objects.select_for_update().select_related("version__record", "community").get(
            pk=request_id)
        if not _may(actor, review, move.role):
            who = "a moderator of this community who is not an author" if move.role == MODERATOR else "an author"
            raise PermissionDenied(f"Only {who} can {action.replace('_', ' ')} this request.")
        if review.state not in move.sources:
            raise Conflict(f"The request is {review.get_state_display().lower()}; it cannot be "
                           f"{_past(action)} now.")
        if move.comment_required and not comment:
            raise InvalidInput(move.comment_required, field_errors={"comment": [move.comment_required]})
        previous = review.state
        review.state = move.target
        fields = ["state", "updated"]
        if move.target in FINAL_STATES:
            review.closed_at = timezone.now()
            fields.append("closed_at")
        review.save(update_fields=fields)
        ReviewEvent.objects.create(request=review, kind=ReviewEvent.Kind.STATE_CHANGE, actor=actor,
                                   from_state=previous, to_state=move.target, comment=comment)
        move.on_version(review, actor)
    return review


def _past(action: str) -> str:
    return {"accept": "accepted", "request_changes": "sent back for changes", "decline": "declined",
            "resubmit": "resubmitted", "cancel": "cancelled"}[action]
