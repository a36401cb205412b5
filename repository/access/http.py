"""The request's side of the access policy: who is asking, and which share links they hold.

A share link (`/access/share/<token>`, made by `services.share_link_create`) is redeemed once per browser
session: its id is kept in the session, and each later request re-checks that it is still live (not revoked,
not expired), so revoking a link shuts out those who already opened it. API clients without a session send the
token as the `share` query parameter.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from repository.access.models import ShareLink
from repository.access.policy import can_read_files
from repository.models import Version

SESSION_KEY = "access_share_links"
QUERY_PARAMETER = "share"


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _live():
    return ShareLink.objects.filter(revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))


def live_share_link(token: str) -> ShareLink | None:
    if not token or len(token) > 200:
        return None
    return _live().filter(token_sha256=token_sha256(token)).select_related("record").first()


def shared_record_ids(request) -> frozenset[int]:
    """The records whose restricted versions and draft the request may read through a live share link."""
    cached = getattr(request, "_shared_record_ids", None)
    if cached is not None:
        return cached
    link_ids = list(getattr(request, "session", {}).get(SESSION_KEY, []))[:100]
    record_ids = set(_live().filter(pk__in=link_ids).values_list("record_id", flat=True)) if link_ids else set()
    token = request.GET.get(QUERY_PARAMETER, "") if hasattr(request, "GET") else ""
    if token and (link := live_share_link(token)) is not None:
        record_ids.add(link.record_id)
    request._shared_record_ids = frozenset(record_ids)
    return request._shared_record_ids


def remember_share_link(request, link: ShareLink) -> None:
    """Keep a redeemed link in the session (a reviewer opens it once, then browses)."""
    held = [pk for pk in request.session.get(SESSION_KEY, []) if pk != link.pk]
    request.session[SESSION_KEY] = [link.pk, *held][:100]
    request.__dict__.pop("_shared_record_ids", None)


def request_can_read_files(request, version: Version) -> bool:
    return can_read_files(request.user, version, shared_record_ids=shared_record_ids(request))


def share_link_url(token: str) -> str:
    """The absolute link a share token opens, on SITE_URL like every link the site hands out (DOIs, e-mails)."""
    return settings.SITE_URL + reverse("access:share", kwargs={"token": token})


def holds_share_link(request, record) -> bool:
    """Whether the request reads `record` through a live share link: its pages are then kept out of indexes."""
    return record.pk in shared_record_ids(request)


def not_indexed(response):
    """A page reached through a share link: never indexed (`X-Robots-Tag`, beside the page's own robots meta
    tag), never cached by shared caches, and without FAIR Signposting items, which would invite harvesters to
    a page that exists only for the link's holders."""
    response["X-Robots-Tag"] = "noindex"
    response["Cache-Control"] = "private, no-store"
    if response.has_header("Link"):
        del response["Link"]
    return response
