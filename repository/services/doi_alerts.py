"""DOIs the registrar has been behind on for too long: counted for /metrics and e-mailed to the admins.

A DOI is overdue when it has not been in sync with the registrar for DOI_PENDING_ALERT_MINUTES (from the first
change the registrar has not taken yet). The sweep calls `doi_alert_overdue` every minute; each DOI is reported
once, and again only after it was in sync and then fell behind for that long once more.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone

from repository.models import DoiOutbox
from repository.services.admin_mail import admins_tell

logger = logging.getLogger(__name__)

LISTED = 50  # DOIs named in one e-mail; the rest are counted


def doi_overdue() -> QuerySet[DoiOutbox]:
    """Pending DOIs older than the threshold (none when DOI_PENDING_ALERT_MINUTES is 0)."""
    if settings.DOI_PENDING_ALERT_MINUTES <= 0:
        return DoiOutbox.objects.none()
    cutoff = timezone.now() - timedelta(minutes=settings.DOI_PENDING_ALERT_MINUTES)
    return DoiOutbox.objects.filter(synced_generation__lt=F("generation"), pending_since__lte=cutoff)


def doi_alert_overdue() -> int:
    """E-mail the admins about DOIs that became overdue since the last call; returns how many."""
    fresh = list(doi_overdue().filter(overdue_alerted_at__isnull=True).order_by("pending_since")
                 .values_list("pk", "doi", "pending_since", "attempts", "needs_attention", "last_error"))
    if not fresh:
        return 0
    DoiOutbox.objects.filter(pk__in=[row[0] for row in fresh]).update(overdue_alerted_at=timezone.now())
    minutes = settings.DOI_PENDING_ALERT_MINUTES
    subject = f"{len(fresh)} DOI(s) not in sync with the registrar for over {minutes:g} minutes"
    lines = [f"{doi}: pending since {since:%Y-%m-%d %H:%M} UTC, {attempts} failed attempt(s)"
             f"{', refused (needs attention)' if attention else ''}; last error: {error or 'none'}"
             for _, doi, since, attempts, attention, error in fresh[:LISTED]]
    if len(fresh) > LISTED:
        lines.append(f"... and {len(fresh) - LISTED} more.")
    body = (subject + ".\n\nThe sync keeps trying; refused ones wait for an admin (DOIs in the admin site).\n\n"
            + "\n".join(lines) + "\n")
    _tell_admins(subject, body)
    logger.error("%s: %s", subject, ", ".join(row[1] for row in fresh[:LISTED]))
    return len(fresh)


def _tell_admins(subject: str, body: str) -> None:
    try:
        admins_tell(subject, body)
    except Exception:  # noqa: BLE001 - the DOIs stay marked and counted in /metrics; a mail server down must not stop the sweep
        logger.exception("Could not e-mail the admins about overdue DOIs")
