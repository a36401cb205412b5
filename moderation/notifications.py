"""E-mail about review requests, sent after the transaction commits (console backend by default)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail
from django.db import transaction
from django.db.models import Q

from moderation.models import ReviewRequest
from repository.permissions import MODERATORS_GROUP


def _request_url(review: ReviewRequest) -> str:
    return settings.SITE_URL + review.get_absolute_url()


def _moderator_addresses(review: ReviewRequest) -> list[str]:
    users = get_user_model().objects.filter(
        Q(moderated_communities=review.community) | Q(groups__name=MODERATORS_GROUP), is_active=True
    ).exclude(records=review.version.record).exclude(email="").distinct()
    return sorted(users.values_list("email", flat=True))


def _author_addresses(review: ReviewRequest, exclude_user=None) -> list[str]:
    owners = review.version.record.owners.filter(is_active=True).exclude(email="")
    if exclude_user is not None:
        owners = owners.exclude(pk=exclude_user.pk)
    return sorted(owners.values_list("email", flat=True))


def _send_on_commit(messages: list[tuple[str, str, str, list[str]]]) -> None:
    messages = [m for m in messages if m[3]]
    if messages:
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=True))


def notify_submitted(review: ReviewRequest) -> None:
    title = review.version.title or review.version.record.public_id
    subject = f"[nbarchive] New submission to {review.community.name}: {title}"
    body = f"{review.submitted_by} submitted \"{title}\" for review.\n\n{_request_url(review)}\n"
    _send_on_commit([(subject, body, settings.DEFAULT_FROM_EMAIL, _moderator_addresses(review))])


def notify_authors(review: ReviewRequest, *, actor, what: str, comment: str = "") -> None:
    title = review.version.title or review.version.record.public_id
    subject = f"[nbarchive] {what}: {title}"
    body = f"{actor} {what.lower()} on \"{title}\".\n\n{comment}\n\n{_request_url(review)}\n"
    _send_on_commit([(subject, body, settings.DEFAULT_FROM_EMAIL, _author_addresses(review, exclude_user=actor))])


def notify_corrected(*, version, actor, fields: list[str], reason: str) -> None:
    """Tell the moderators who accepted a version that its owners corrected its published metadata (the core's
    `version_corrected` event): corrections take effect at once, so the moderators look afterwards."""
    review = version.review_requests.filter(state=ReviewRequest.State.ACCEPTED).order_by("-created").first()
    if review is None:
        return
    title = version.title or version.record.public_id
    subject = f"[nbarchive] Metadata corrected: {title}"
    body = (f"{actor} corrected the published metadata of \"{title}\" (version {version.number}): "
            f"{', '.join(fields)}.\n\n{reason}\n\nEach change is on the request's timeline: {_request_url(review)}\n")
    recipients = [address for address in _moderator_addresses(review) if address != getattr(actor, "email", None)]
    _send_on_commit([(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)])


# For moderation/corrections.py.
request_url = _request_url
moderator_addresses = _moderator_addresses
send_on_commit = _send_on_commit
