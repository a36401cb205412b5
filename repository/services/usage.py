"""Usage counts, COUNTER-style: views of landing pages and downloads, per version and per record.

Counting never slows a page: a request only decides whether it counts (a GET that succeeded, from a browser that
is not on the COUNTER robots list) and writes one `UsageEvent` row. `usage_aggregate` (a Celery beat task, every
minute) turns the events into `UsageCount` rows (and the search documents' `views`, for the `mostviewed`
sort) with the COUNTER Code of Practice's rules:

- a double click (the same visitor asking for the same thing of the same version again within 30 seconds)
  counts once;
- `unique_*` counts one per visitor per hour: for a version, and for the record across all its versions;
- robots are left out by the user agent, with the list COUNTER points to (vendored in
  repository/data/counter_robots/, with its source).

A visitor is the signed-in user, else the session, else the address and browser of that day (COUNTER's fallback);
only a keyed hash of it is stored. Processed events are deleted once no rule needs them any more.
"""

import hashlib
import hmac
import json
import logging
import re
from collections import defaultdict
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from repository.models import UsageCount, UsageEvent, Version
from repository.search import search_views_refresh

logger = logging.getLogger(__name__)

ROBOTS_LIST = Path(__file__).resolve().parents[1] / "data" / "counter_robots" / "COUNTER_Robots_list.json"
DOUBLE_CLICK = timedelta(seconds=30)
# Events younger than this are left for the next run, so that one committed a moment late is still in order.
SETTLE = timedelta(seconds=5)
KEEP_PROCESSED = timedelta(hours=2)  # longer than the hour and the 30 seconds the rules look back
BATCH_SIZE = 20000


@lru_cache(maxsize=1)
def _robots() -> re.Pattern:
    patterns = [entry["pattern"] for entry in json.loads(ROBOTS_LIST.read_text(encoding="utf-8"))]
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)


def is_robot(user_agent: str) -> bool:
    """Whether COUNTER's list names this user agent (an empty one included)."""
    return bool(_robots().search(user_agent or ""))


def visitor_id(request) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        identity = f"user:{user.pk}"
    elif getattr(request, "session", None) is not None and request.session.session_key:
        identity = f"session:{request.session.session_key}"
    else:
        address = request.META.get("REMOTE_ADDR", "")
        identity = f"address:{address}|{request.META.get('HTTP_USER_AGENT', '')}|{timezone.now().date()}"
    return hmac.new(settings.SECRET_KEY.encode(), identity.encode(), hashlib.sha256).hexdigest()


def usage_record(request, version: Version, kind: str, target: str = "") -> bool:
    """Write the event of a view or download of `version` if it counts; True when written. Never raises: a
    page is served even if its counting fails."""
    if request.method != "GET" or version.state not in (Version.State.PUBLISHED, Version.State.PUBLISHING):
        return False
    if is_robot(request.META.get("HTTP_USER_AGENT", "")):
        return False
    if "prefetch" in (request.headers.get("Sec-Purpose", "") + request.headers.get("Purpose", "")).lower():
        return False  # a browser fetching ahead of a click that may never come
    try:
        UsageEvent.objects.create(record_id=version.record_id, version=version, kind=kind, target=target[:255],
                                  visitor=visitor_id(request), occurred_at=timezone.now())
    except Exception:
        logger.exception("Could not record a %s of %s", kind, version)
        return False
    return True


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def usage_aggregate(*, now: datetime | None = None) -> int:
    """Count the settled events not counted yet into UsageCount; return how many events were counted."""
    now = now or timezone.now()
    with transaction.atomic():
        pending = list(UsageEvent.objects.select_for_update(skip_locked=True)
                       .filter(processed=False, occurred_at__lte=now - SETTLE)
                       .order_by("occurred_at", "pk")[:BATCH_SIZE])
        if pending:
            first = pending[0].occurred_at
            # What the rules look back at: the processed events of the first event's hour and its 30 seconds.
            earlier = list(UsageEvent.objects.filter(processed=True,
                                                     occurred_at__gte=min(_hour(first), first - DOUBLE_CLICK))
                           .order_by("occurred_at", "pk"))
            increments = _count(earlier, pending)
            _apply(increments)
            UsageEvent.objects.filter(pk__in=[event.pk for event in pending]).update(processed=True)
        UsageEvent.objects.filter(processed=True, occurred_at__lt=now - KEEP_PROCESSED).delete()
    return len(pending)


def _count(earlier: list[UsageEvent], pending: list[UsageEvent]) -> dict:
    """The increments per (record, version or None) and field, from `pending` seen after `earlier`."""
    last_click: dict[tuple, datetime] = {}
    seen_hours: set[tuple] = set()
    increments: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    total_field = {UsageEvent.Kind.VIEW: "views", UsageEvent.Kind.DOWNLOAD: "downloads"}
    for counting, events in ((False, earlier), (True, pending)):
        for event in events:
            click = (event.visitor, event.version_id, event.kind, event.target)
            previous = last_click.get(click)
            last_click[click] = event.occurred_at
            if previous is not None and event.occurred_at - previous < DOUBLE_CLICK:
                continue  # a double click: the first one counted
            hour = _hour(event.occurred_at)
            version_unique = (event.visitor, "version", event.version_id, event.kind, hour)
            record_unique = (event.visitor, "record", event.record_id, event.kind, hour)
            if counting:
                field = total_field[event.kind]
                for key in ((event.record_id, event.version_id), (event.record_id, None)):
                    increments[key][field] += 1
                if version_unique not in seen_hours:
                    increments[(event.record_id, event.version_id)][f"unique_{field}"] += 1
                if record_unique not in seen_hours:
                    increments[(event.record_id, None)][f"unique_{field}"] += 1
            seen_hours.update((version_unique, record_unique))
    return increments


def _apply(increments: dict) -> None:
    for (record_id, version_id), fields in increments.items():
        row, _ = UsageCount.objects.get_or_create(record_id=record_id, version_id=version_id)
        UsageCount.objects.filter(pk=row.pk).update(**{name: F(name) + value for name, value in fields.items()})
    # The search's `mostviewed` sort reads the records' unique views from their search documents.
    search_views_refresh(record_ids={record_id for record_id, version_id in increments if version_id is None})


EMPTY = {"views": 0, "unique_views": 0, "downloads": 0, "unique_downloads": 0}


def usage_counts(version: Version) -> dict:
    """{"version": {...}, "record": {...}} with views, unique_views, downloads, unique_downloads."""
    rows = {row.version_id: row.as_dict() for row in UsageCount.objects.filter(
        Q(version=version) | Q(version__isnull=True), record_id=version.record_id)}
    return {"version": rows.get(version.pk, dict(EMPTY)), "record": rows.get(None, dict(EMPTY))}
