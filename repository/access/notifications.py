"""E-mail about access requests, sent after the transaction commits (as moderation/notifications.py does): the
owners hear of each new request, the requester of the answer. A mail server's failure never undoes a decision."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import transaction
from django.urls import reverse

from repository.access.models import AccessRequest
from repository.models import Record, Version


def record_title(record: Record) -> str:
    """What the record is called: the title of its newest live accepted version, else its id."""
    version = (record.versions.filter(state__in=(Version.State.PUBLISHED, Version.State.PUBLISHING))
               .order_by("-number").first())
    return (version.title if version else "") or record.public_id


def manage_url(record: Record) -> str:
    return settings.SITE_URL + reverse("access:manage", kwargs={"record_id": record.public_id})


def _send_on_commit(messages: list[tuple[str, str, str, list[str]]]) -> None:
    messages = [message for message in messages if message[3]]
    if messages:
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=True))


def notify_owners_of_request(access_request: AccessRequest) -> None:
    record, requester = access_request.record, access_request.requester
    owners = sorted(record.owners.filter(is_active=True).exclude(email="").values_list("email", flat=True))
    title = record_title(record)
    who = requester.get_full_name() or requester.username
    subject = f"[nbarchive] Access request for {title}"
    body = (f"{who} ({requester.username}) asks for access to the restricted files of \"{title}\" "
            f"({record.public_id}):\n\n{access_request.message}\n\n"
            f"Accept or decline it on the record's access page: {manage_url(record)}\n")
    _send_on_commit([(subject, body, settings.DEFAULT_FROM_EMAIL, owners)])


def notify_requester(access_request: AccessRequest, *, reason: str) -> None:
    """Tell the requester the owners' answer: accepted (until when) or declined (and why, if they said)."""
    record, requester = access_request.record, access_request.requester
    if not (requester.is_active and requester.email):
        return
    title = record_title(record)
    landing = settings.SITE_URL + reverse("repository:record_landing", kwargs={"record_id": record.public_id})
    if access_request.state == AccessRequest.State.ACCEPTED:
        until = (f" until {access_request.until:%Y-%m-%d} (inclusive)" if access_request.until else "")
        subject = f"[nbarchive] Access granted: {title}"
        body = (f"The owners of \"{title}\" accepted your request: you may read its restricted files{until}, "
                f"signed in as {requester.username}.\n\n{landing}\n")
    else:
        subject = f"[nbarchive] Access request declined: {title}"
        said = f"\n\nThe owners wrote:\n{reason}" if reason else ""
        body = f"The owners of \"{title}\" declined your request for access to its files.{said}\n\n{landing}\n"
    _send_on_commit([(subject, body, settings.DEFAULT_FROM_EMAIL, [requester.email])])
