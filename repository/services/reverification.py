"""Re-verification over time: published versions are re-run in their image, and a changed result is told.

A notebook that reproduced at publication can stop reproducing later: a data reference's server answers 404,
a registry drops the image, a checksum changes. The beat job (`reverify_due_task`, hourly) queues runs of the
published versions whose last result is older than REVERIFY_INTERVAL_DAYS, oldest first, at most
REVERIFY_PER_DAY a day. Each run is an ordinary ExecutionRun (purpose `reverification`), so a version keeps its
whole history. When the result changes between reproducible (reproduced, with or without differences) and not,
the owners and the moderators get an e-mail, and the landing page says what changed and since when.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from repository import hooks
from repository.errors import Conflict
from repository.exports import version_landing_url
from repository.models import ExecutionRun, Verdict, Version
from repository.permissions import MODERATORS_GROUP

REPRODUCIBLE = {Verdict.REPRODUCED, Verdict.REPRODUCED_WITH_DIFFERENCES}


def is_reproducible(run: ExecutionRun) -> bool:
    return run.verdict in REPRODUCIBLE


def versions_due(*, now: datetime, limit: int) -> list[Version]:
    """Published versions whose latest finished run is older than the interval (or that have none), oldest
    first, without an active run."""
    active = ExecutionRun.objects.filter(version=OuterRef("pk"), status__in=[ExecutionRun.Status.QUEUED,
                                                                            ExecutionRun.Status.RUNNING])
    cutoff = now - timedelta(days=settings.REVERIFY_INTERVAL_DAYS)
    candidates = (Version.objects.filter(state=Version.State.PUBLISHED).exclude(notebook_path="")
                  .annotate(last_checked=Max("runs__finished_at", filter=Q(runs__status=ExecutionRun.Status.FINISHED)),
                            busy=Exists(active))
                  .filter(busy=False).filter(Q(last_checked__lt=cutoff) | Q(last_checked__isnull=True))
                  .order_by("last_checked", "published_at", "pk"))
    return list(candidates[:max(limit, 0)])


def reverify_due(*, now: datetime | None = None) -> list[str]:
    """Queue the re-verification runs due now, within today's budget; one line per queued version."""
    from repository.services.runs import run_request

    now = now or timezone.now()
    queued_today = ExecutionRun.objects.filter(purpose=ExecutionRun.Purpose.REVERIFICATION,
                                               queued_at__gte=now - timedelta(days=1)).count()
    lines = []
    for version in versions_due(now=now, limit=settings.REVERIFY_PER_DAY - queued_today):
        try:
            run = run_request(version=version, requested_by=None, purpose=ExecutionRun.Purpose.REVERIFICATION)
        except Conflict:
            continue  # a run started meanwhile
        lines.append(f"{version.record.public_id} v{version.number}: re-verification queued (run {run.run_id})")
    return lines


@dataclass
class VerificationHistory:
    latest: ExecutionRun | None
    changed: bool  # the latest result differs from the one before it (reproducible or not)
    summary: str  # e.g. "reproduced on 2026-12-01; not reproducible since 2027-03-02: <why>"
    runs: list[ExecutionRun]


def verification_history(version: Version) -> VerificationHistory:
    """The finished runs of a version, newest first, and what its landing page says about them."""
    runs = list(version.runs.filter(status=ExecutionRun.Status.FINISHED).exclude(finished_at=None)
                .defer("logs", "report").order_by("-finished_at", "-id"))
    if not runs:
        return VerificationHistory(None, False, "", [])
    latest = runs[0]
    streak = list(_leading_streak(runs))
    before = runs[len(streak)] if len(streak) < len(runs) else None
    return VerificationHistory(latest, before is not None and len(streak) == 1, _summary(latest, streak[-1], before),
                               runs)


def _leading_streak(runs: list[ExecutionRun]):
    for run in runs:
        if is_reproducible(run) != is_reproducible(runs[0]):
            return
        yield run


def _summary(latest: ExecutionRun, streak_start: ExecutionRun, before: ExecutionRun | None) -> str:
    state = "reproducible" if is_reproducible(latest) else "not reproducible"
    if before is None:
        since = f"; {state} since {_day(streak_start.finished_at)}" if streak_start.pk != latest.pk else ""
        return f"{latest.get_verdict_display().lower()} on {_day(latest.finished_at)}{since}"
    why = "" if is_reproducible(latest) else f": {latest.message}"
    return (f"{before.get_verdict_display().lower()} on {_day(before.finished_at)}; {state} since "
            f"{_day(streak_start.finished_at)}{why}")


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def reverification_recorded(run: ExecutionRun) -> None:
    """Inside the transaction that finished a re-verification run: e-mail the owners and moderators after the
    commit when the result changed."""
    history = verification_history(run.version)
    if history.latest is None or history.latest.pk != run.pk or not history.changed:
        return
    recipients = _recipients(run.version)
    if not recipients:
        return
    version = run.version
    subject = f"[nbarchive] Re-verification changed: {version.title}"
    body = (f"The re-verification of \"{version.title}\" ({version.doi}) changed its result:\n\n"
            f"{history.summary}\n\n{version_landing_url(version)}\n")
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients,
                                            fail_silently=True))


def _recipients(version: Version) -> list[str]:
    users = {*version.record.owners.filter(is_active=True), *hooks.moderators_of(version),
             *get_user_model().objects.filter(groups__name=MODERATORS_GROUP, is_active=True)}
    return sorted({user.email for user in users if user.email})
