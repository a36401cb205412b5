"""Letting people in to a record's closed files: access requests and their answers, grants, share links.

Every service is atomic and appends an audit event; e-mails go out after the transaction commits
(`notifications.py`). Who may do what is `permissions.py`; who reads files is `policy.py`.

- A signed-in reader who is not an owner asks for access (`access_request_create`) while some live version of
  the record is restricted. One pending request per reader and record; the owners are e-mailed.
- An owner accepts (a grant on the record, optionally until a day) or declines (with a reason for the
  requester); the requester is e-mailed either way. A grant is revoked by an owner (`access_grant_revoke`).
- An owner makes a share link (`share_link_create`): a secret token, shown once (only its SHA-256 is kept),
  optionally expiring at the end of a day (UTC). Anyone holding it reads the record's restricted versions and
  its draft, until it is revoked or expires. `share_link_redeem` counts a use.

Errors: InvalidInput (a field is wrong, with field_errors), PermissionDenied (not an owner, not signed in),
Conflict (the state does not allow it: already answered, already pending, nothing restricted), NotFound (a share
token that is unknown, revoked or expired).
"""

from __future__ import annotations

import datetime
import secrets

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from repository.access import notifications
from repository.access.http import live_share_link, token_sha256
from repository.access.models import AccessGrant, AccessRequest, ShareLink
from repository.access.permissions import can_manage_access, restricted_versions, shareable_draft
from repository.access.policy import has_live_grant, today
from repository.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from repository.models import Record
from repository.permissions import is_owner
from repository.services.audit import audit_event_append

MAX_MESSAGE_LENGTH = 2000
MAX_LABEL_LENGTH = 200
TOKEN_BYTES = 32  # 43 URL-safe characters: unguessable, and short enough for an e-mail to a referee


def _check_manager(actor, record: Record, what: str) -> None:
    if not can_manage_access(actor, record):
        raise PermissionDenied(f"Only the owners of the record can {what}.")


def _check_future_day(day: datetime.date | None, field: str) -> None:
    if day is not None and day < today():
        raise InvalidInput(f"{day.isoformat()} has passed.",
                           field_errors={field: ["The day has passed; give today or a later day, or none."]})


@transaction.atomic
def access_request_create(*, record: Record, requester, message: str) -> AccessRequest:
    """Ask the owners for access to the record's restricted files. Raises PermissionDenied when not signed in;
    Conflict for an owner, when nothing is restricted, when the requester already has access, or when a request
    of theirs is still pending; InvalidInput for an empty or too long message."""
    if not (requester and requester.is_authenticated):
        raise PermissionDenied("Sign in to ask for access.")
    record = Record.objects.select_for_update().get(pk=record.pk)  # numbers requests one at a time
    if is_owner(requester, record):
        raise Conflict("You own this record: you read its files already.")
    if not restricted_versions(record):
        raise Conflict("No version of this record has restricted files; there is nothing to ask for.")
    if has_live_grant(requester, record):
        raise Conflict("You have access to this record's files already.")
    message = (message or "").strip()
    if not message:
        raise InvalidInput("Say who you are and why you need the files.",
                           field_errors={"message": ["Say who you are and why you need the files."]})
    if len(message) > MAX_MESSAGE_LENGTH:
        raise InvalidInput("The message is too long.",
                           field_errors={"message": [f"At most {MAX_MESSAGE_LENGTH} characters."]})
    pending = AccessRequest.objects.filter(record=record, requester=requester,
                                           state=AccessRequest.State.PENDING).first()
    if pending is not None:
        raise Conflict(f"Your request {pending.number} of {pending.created:%Y-%m-%d} is still waiting for the "
                       "owners' answer.")
    number = (AccessRequest.objects.filter(record=record).aggregate(n=Max("number"))["n"] or 0) + 1
    try:
        with transaction.atomic():
            access_request = AccessRequest.objects.create(record=record, number=number, requester=requester,
                                                          message=message)
    except IntegrityError:  # the same reader's second request, sent at the same moment
        raise Conflict("A request of yours is already waiting for the owners' answer.") from None
    audit_event_append(actor=requester, action="access.request", record=record, data={"number": number})
    notifications.notify_owners_of_request(access_request)
    return access_request


def _locked_pending(access_request: AccessRequest, actor, verb: str) -> AccessRequest:
    access_request = (AccessRequest.objects.select_for_update().select_related("record", "requester")
                      .get(pk=access_request.pk))
    _check_manager(actor, access_request.record, f"{verb} access requests")
    if access_request.state != AccessRequest.State.PENDING:
        raise Conflict(f"Request {access_request.number} was {access_request.state} already"
                       + (f" on {access_request.decided_at:%Y-%m-%d}." if access_request.decided_at else "."))
    return access_request


@transaction.atomic
def access_request_accept(*, request: AccessRequest, actor, until: datetime.date | None = None) -> AccessGrant:
    """Accept a pending request: the requester reads the record's restricted files until `until` (inclusive; none:
    no end). A live grant the requester already had is replaced by this one. Raises PermissionDenied (not an
    owner), Conflict (answered already), InvalidInput (`until` has passed)."""
    access_request = _locked_pending(request, actor, "accept")
    _check_future_day(until, "until")
    record, requester = access_request.record, access_request.requester
    now = timezone.now()
    live = AccessGrant.objects.select_for_update().filter(record=record, user=requester, revoked_at__isnull=True)
    replaced = list(live.values_list("pk", flat=True))
    AccessGrant.objects.filter(pk__in=replaced).update(revoked_at=now)
    grant = AccessGrant.objects.create(record=record, user=requester, until=until, granted_by=actor,
                                       request=access_request)
    access_request.state = AccessRequest.State.ACCEPTED
    access_request.until, access_request.decided_by, access_request.decided_at = until, actor, now
    access_request.save(update_fields=["state", "until", "decided_by", "decided_at"])
    audit_event_append(actor=actor, action="access.request.accept", record=record,
                       data={"number": access_request.number, "grant": grant.pk, "user": requester.pk,
                             "until": until.isoformat() if until else None, "replaced_grants": replaced})
    notifications.notify_requester(access_request, reason="")
    return grant


@transaction.atomic
def access_request_decline(*, request: AccessRequest, actor, reason: str = "") -> AccessRequest:
    """Decline a pending request; `reason` is sent to the requester and kept in the audit trail. Raises
    PermissionDenied (not an owner), Conflict (answered already), InvalidInput (reason too long)."""
    access_request = _locked_pending(request, actor, "decline")
    reason = (reason or "").strip()
    if len(reason) > MAX_MESSAGE_LENGTH:
        raise InvalidInput("The reason is too long.",
                           field_errors={"reason": [f"At most {MAX_MESSAGE_LENGTH} characters."]})
    access_request.state = AccessRequest.State.DECLINED
    access_request.decided_by, access_request.decided_at = actor, timezone.now()
    access_request.save(update_fields=["state", "decided_by", "decided_at"])
    audit_event_append(actor=actor, action="access.request.decline", record=access_request.record,
                       data={"number": access_request.number, "user": access_request.requester_id,
                             "reason": reason})
    notifications.notify_requester(access_request, reason=reason)
    return access_request


@transaction.atomic
def access_grant_revoke(*, grant: AccessGrant, actor) -> AccessGrant:
    """Take a grant back: its holder no longer reads the files, from the next request on. Raises
    PermissionDenied (not an owner), Conflict (revoked already)."""
    grant = AccessGrant.objects.select_for_update().select_related("record").get(pk=grant.pk)
    _check_manager(actor, grant.record, "revoke access")
    if grant.revoked_at is not None:
        raise Conflict(f"This access was revoked already, on {grant.revoked_at:%Y-%m-%d}.")
    grant.revoked_at = timezone.now()
    grant.save(update_fields=["revoked_at"])
    audit_event_append(actor=actor, action="access.grant.revoke", record=grant.record,
                       data={"grant": grant.pk, "user": grant.user_id})
    return grant


def _end_of_day(day: datetime.date) -> datetime.datetime:
    """A link that expires "on" a day works through that day (UTC), as a grant `until` a day does."""
    return datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min, tzinfo=datetime.UTC)


@transaction.atomic
def share_link_create(*, record: Record, actor, expires: datetime.date | None = None,
                      label: str = "") -> tuple[ShareLink, str]:
    """A new secret link to the record's restricted versions and its draft; returns the link and its token,
    which is never shown again. `expires`: the last day it works (UTC), none: until revoked. Raises
    PermissionDenied (not an owner), InvalidInput (day passed, label too long), Conflict (the record has neither a
    restricted version nor a draft, so the link would open nothing)."""
    record = Record.objects.select_for_update().get(pk=record.pk)
    _check_manager(actor, record, "make share links")
    _check_future_day(expires, "expires")
    label = (label or "").strip()
    if len(label) > MAX_LABEL_LENGTH:
        raise InvalidInput("The label is too long.",
                           field_errors={"label": [f"At most {MAX_LABEL_LENGTH} characters."]})
    if not restricted_versions(record) and shareable_draft(record) is None:
        raise Conflict("This record has no restricted version and no draft: a share link would open nothing "
                       "that is not public already.")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = ShareLink.objects.create(record=record, token_sha256=token_sha256(token), label=label, created_by=actor,
                                    expires_at=_end_of_day(expires) if expires else None)
    audit_event_append(actor=actor, action="access.link.create", record=record,
                       data={"link": link.pk, "label": label, "expires": expires.isoformat() if expires else None})
    return link, token


@transaction.atomic
def share_link_revoke(*, link: ShareLink, actor) -> ShareLink:
    """Revoke a share link: it stops working at once, also for the browsers that opened it before. Raises
    PermissionDenied (not an owner), Conflict (revoked already)."""
    link = ShareLink.objects.select_for_update().select_related("record").get(pk=link.pk)
    _check_manager(actor, link.record, "revoke share links")
    if link.revoked_at is not None:
        raise Conflict(f"This link was revoked already, on {link.revoked_at:%Y-%m-%d}.")
    link.revoked_at = timezone.now()
    link.save(update_fields=["revoked_at"])
    audit_event_append(actor=actor, action="access.link.revoke", record=link.record,
                       data={"link": link.pk, "label": link.label, "uses": link.uses})
    return link


def share_link_redeem(*, token: str) -> ShareLink:
    """The live link of `token`, with this use counted (its `uses` and `last_used_at`). Raises NotFound for a
    token that is unknown, revoked or expired, saying no more (a guesser learns nothing). No audit event: the
    link's own counter records its uses, and an event per visit would grow without bound."""
    link = live_share_link(token)
    if link is None:
        raise NotFound("This share link does not work: it is unknown, was revoked, or has expired.")
    now = timezone.now()
    ShareLink.objects.filter(pk=link.pk).update(uses=F("uses") + 1, last_used_at=now)
    link.refresh_from_db(fields=["uses", "last_used_at"])
    return link
