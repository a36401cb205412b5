"""Reads of the access app. A caller that may not manage a record gets NotFound, never a hint that it exists."""

from __future__ import annotations

from django.db.models import Case, QuerySet, When

from repository.access.models import AccessGrant, AccessRequest, ShareLink
from repository.access.permissions import can_manage_access
from repository.errors import NotFound
from repository.models import Record, Version


def record_get_managed(*, record_id: str, user) -> Record:
    """The record, if `user` manages its access (an owner); NotFound otherwise, as for every owners' route."""
    record = Record.objects.filter(public_id=record_id).first()
    if record is None or not can_manage_access(user, record):
        raise NotFound(f"No record '{record_id}' that you own.")
    return record


def record_get_public(*, record_id: str) -> Record:
    """A record readers may know of (some version accepted); NotFound otherwise (drafts stay private)."""
    record = Record.objects.filter(public_id=record_id, versions__state__in=Version.ACCEPTED_STATES).first()
    if record is None:
        raise NotFound(f"No published version of record '{record_id}'.")
    return record


def access_requests_list(*, record: Record) -> QuerySet[AccessRequest]:
    """Pending first, then the answered ones, newest first in each."""
    return (AccessRequest.objects.filter(record=record).select_related("record", "requester", "decided_by")
            .order_by(Case(When(state=AccessRequest.State.PENDING, then=0), default=1), "-number"))


def access_request_get(*, record: Record, number: int) -> AccessRequest:
    access_request = AccessRequest.objects.select_related("record", "requester").filter(record=record,
                                                                                       number=number).first()
    if access_request is None:
        raise NotFound(f"Record '{record.public_id}' has no access request {number}.")
    return access_request


def access_request_pending_for(*, record: Record, user) -> AccessRequest | None:
    if not (user and user.is_authenticated):
        return None
    return AccessRequest.objects.filter(record=record, requester=user, state=AccessRequest.State.PENDING).first()


def access_grants_live(*, record: Record) -> QuerySet[AccessGrant]:
    """The grants not revoked, newest first (one that ended by its `until` day is listed until revoked)."""
    return (AccessGrant.objects.filter(record=record, revoked_at__isnull=True)
            .select_related("record", "user", "granted_by", "request").order_by("-created", "-pk"))


def access_grant_get(*, record: Record, grant_id: int) -> AccessGrant:
    grant = AccessGrant.objects.select_related("record", "user").filter(record=record, pk=grant_id).first()
    if grant is None:
        raise NotFound(f"Record '{record.public_id}' has no access grant {grant_id}.")
    return grant


def share_links_list(*, record: Record) -> QuerySet[ShareLink]:
    """Every share link of the record, live or not (their uses stay visible), newest first."""
    return ShareLink.objects.filter(record=record).select_related("record", "created_by").order_by("-created", "-pk")


def share_link_get(*, record: Record, link_id: int) -> ShareLink:
    link = ShareLink.objects.select_related("record").filter(record=record, pk=link_id).first()
    if link is None:
        raise NotFound(f"Record '{record.public_id}' has no share link {link_id}.")
    return link
