"""Corrections held for review: in a community that reviews corrections (Community.review_corrections), an
owner's correction of a published version's metadata waits as a CorrectionRequest until one of the community's
moderators approves it (it is then applied by the core's `version_correct_metadata`) or declines it.

The core asks through its hooks (`corrections_reviewed`, `hold_correction`, filled in apps.py); a later correction
replaces one still waiting. Admins' corrections are never held.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from moderation import notifications
from moderation.models import CorrectionRequest, ReviewRequest
from moderation.permissions import can_moderate
from repository.errors import Conflict, NotFound, PermissionDenied


def accepted_review(version) -> ReviewRequest | None:
    return (version.review_requests.filter(state=ReviewRequest.State.ACCEPTED).select_related("community")
            .order_by("-created").first())


def corrections_reviewed(version, actor) -> bool:
    """The core's `corrections_reviewed` hook."""
    if getattr(actor, "is_superuser", False):
        return False
    review = accepted_review(version)
    return review is not None and review.community.review_corrections


def correction_hold(*, version, actor, metadata: dict, fields: list[str], reason: str) -> CorrectionRequest:
    """The core's `hold_correction` hook: keep the (validated) correction for the community's moderators."""
    review = accepted_review(version)
    if review is None:
        raise Conflict("This version was not accepted through a review; there is no one to review its correction.")
    review.corrections.filter(state=CorrectionRequest.State.PENDING).update(
        state=CorrectionRequest.State.SUPERSEDED, decided_at=timezone.now())
    correction = CorrectionRequest.objects.create(review=review, proposed_by=actor, metadata=metadata,
                                                  fields=fields, reason=reason)
    title = version.title or version.record.public_id
    subject = f"[nbarchive] Correction to review: {title}"
    body = (f"{actor} asks to correct the published metadata of \"{title}\" (version {version.number}): "
            f"{', '.join(fields)}.\n\n{reason}\n\nApprove or decline it on {notifications.request_url(review)}\n")
    notifications.send_on_commit([(subject, body, settings.DEFAULT_FROM_EMAIL,
                                   notifications.moderator_addresses(review))])
    return correction


def corrections_pending(review: ReviewRequest) -> list[CorrectionRequest]:
    return list(review.corrections.filter(state=CorrectionRequest.State.PENDING).select_related("proposed_by"))


@transaction.atomic
def correction_decide(*, correction_id: int, actor, approve: bool, comment: str = "") -> CorrectionRequest:
    """Approve (apply) or decline a held correction. PermissionDenied unless `actor` moderates its community
    (and is not an owner); Conflict once it was decided or replaced."""
    from repository.services.published import version_correct_metadata

    correction = (CorrectionRequest.objects.select_for_update().select_related("review__community", "review__version")
                  .filter(pk=correction_id).first())
    if correction is None:
        raise NotFound("No such correction.")
    review = correction.review
    if not can_moderate(actor, review):
        raise PermissionDenied("Only the community's moderators decide on corrections, never an owner.")
    if correction.state != CorrectionRequest.State.PENDING:
        raise Conflict(f"This correction was already {correction.get_state_display().lower()}.")
    if approve:
        version_correct_metadata(version=review.version, actor=correction.proposed_by, metadata=correction.metadata,
                                 reason=correction.reason, approved_by=actor)
    correction.state = CorrectionRequest.State.APPLIED if approve else CorrectionRequest.State.DECLINED
    correction.decided_by, correction.decided_at = actor, timezone.now()
    correction.decision_comment = (comment or "").strip()[:2000]
    correction.save(update_fields=["state", "decided_by", "decided_at", "decision_comment"])
    notifications.notify_authors(review, actor=actor, what="Correction approved" if approve else "Correction declined",
                                 comment=correction.decision_comment)
    return correction
