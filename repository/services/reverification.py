"""Re-verification over time: published versions are re-run in their image, and a changed result is told.

A notebook that reproduced at publication can stop reproducing later: a data reference's server answers 404,
a registry drops the image, a checksum changes. The beat job (`reverify_due_task`, hourly) queues runs of the
published versions whose last result is older than REVERIFY_INTERVAL_DAYS, oldest first, at most
REVERIFY_PER_DAY a day. Each run is an ordinary ExecutionRun (purpose `reverification`), so a version keeps its
whole history. When the verdict changes (reproduced -> reproduced with differences, -> execution failed, ...) the
owners and the moderators get an e-mail, and the landing page and the public report say what changed and since when.

A re-verification run that ends `error` (after the task's retries) is an attempt too: it is kept in the history and
the version is not due again for REVERIFY_ERROR_RETRY_DAYS, so a version that cannot be re-run does not take the
day's whole budget every hour. Whether it changes the public result depends on why it failed: the image gone from
its registry (or served with other bytes under its digest) is news about the paper ("not reproducible since ...:
the image is no longer in its registry"); an operator's passing trouble (registry down, worker lost) is not, and
the last real result stands.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone

from repository import hooks
from repository.access.serving import RUN_MESSAGE_WITHHELD, run_message
from repository.errors import Conflict
from repository.exports import version_landing_url
from repository.models import ExecutionRun, Verdict, Version
from repository.permissions import MODERATORS_GROUP

REPRODUCIBLE = {Verdict.REPRODUCED, Verdict.REPRODUCED_WITH_DIFFERENCES}
# Run errors that say the version can no longer be re-run as published, with what the public page says about them.
# Every other error code (registry unreachable, pull timeout, worker lost, ...) is the operator's and says nothing.
LASTING_ERRORS = {
    "image_not_found": "the image is no longer in its registry",
    "image_digest_mismatch": "the registry now serves other bytes under the image's pinned digest",
}


def result_of(run: ExecutionRun) -> str:
    """What the run says about the version: its verdict, a lasting error's code, or "" (it says nothing)."""
    if run.status == ExecutionRun.Status.FINISHED:
        return run.verdict
    if run.status == ExecutionRun.Status.ERROR and run.error_code in LASTING_ERRORS:
        return run.error_code
    return ""


def result_label(run: ExecutionRun) -> str:
    if run.status == ExecutionRun.Status.FINISHED:
        return run.get_verdict_display().lower()
    if run.error_code in LASTING_ERRORS:
        return "could not be re-run"
    return "could not be run (an operator's problem; the earlier result stands)"


def is_reproducible(run: ExecutionRun) -> bool:
    return result_of(run) in REPRODUCIBLE


def _reason(run: ExecutionRun, *, files_readable: bool = True) -> str:
    """Why the run says what it says; `files_readable` False: without what quotes the notebook (its version's files
    are closed to the reader of the page)."""
    if run.status == ExecutionRun.Status.ERROR:
        return LASTING_ERRORS.get(run.error_code, "")
    message = run_message(run, files_readable=files_readable)
    return "" if message == RUN_MESSAGE_WITHHELD else message


def _attempts():
    """The runs that count as a look at the version: every finished run, and the re-verification runs that ended
    in error (after their retries)."""
    return Q(status=ExecutionRun.Status.FINISHED) | Q(status=ExecutionRun.Status.ERROR,
                                                       purpose=ExecutionRun.Purpose.REVERIFICATION)


def versions_due(*, now: datetime, limit: int) -> list[Version]:
    """Published versions whose latest finished run is older than the interval (or that have none) and whose last
    failed re-verification is older than the error back-off, least recently looked at first, without an active
    run."""
    active = ExecutionRun.objects.filter(version=OuterRef("pk"), status__in=[ExecutionRun.Status.QUEUED,
                                                                            ExecutionRun.Status.RUNNING])
    cutoff = now - timedelta(days=settings.REVERIFY_INTERVAL_DAYS)
    error_cutoff = now - timedelta(days=settings.REVERIFY_ERROR_RETRY_DAYS)
    finished = Q(runs__status=ExecutionRun.Status.FINISHED)
    failed = Q(runs__status=ExecutionRun.Status.ERROR, runs__purpose=ExecutionRun.Purpose.REVERIFICATION)
    candidates = (Version.objects.filter(state=Version.State.PUBLISHED).exclude(notebook_path="")
                  .annotate(last_checked=Max("runs__finished_at", filter=finished),
                            last_error=Max("runs__finished_at", filter=failed),
                            last_attempt=Max("runs__finished_at", filter=finished | failed),
                            busy=Exists(active))
                  .filter(busy=False).filter(Q(last_checked__lt=cutoff) | Q(last_checked__isnull=True))
                  .filter(Q(last_error__lt=error_cutoff) | Q(last_error__isnull=True))
                  .order_by(F("last_attempt").asc(nulls_first=True), "published_at", "pk"))
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
    latest: ExecutionRun | None  # the newest finished run (its verdict and report)
    changed: bool  # the newest result differs from the one before it
    summary: str  # e.g. "reproduced on 2026-12-01; not reproducible since 2027-03-02: <why>"
    runs: list[ExecutionRun]  # every attempt, newest first, errors included
    latest_result: ExecutionRun | None = None  # the newest run that says something (a lasting error included)
    previous_result: ExecutionRun | None = None  # the one before it
    files_readable: bool = True  # False: the reasons leave out what quotes the notebook

    @property
    def latest_label(self) -> str:
        return result_label(self.latest_result) if self.latest_result else ""

    @property
    def entries(self) -> list[dict]:
        """The history as the report lists it."""
        return [{"run": run, "label": result_label(run), "day": _day(run.finished_at),
                 "reason": _reason(run, files_readable=self.files_readable),
                 "public": run.status == ExecutionRun.Status.FINISHED} for run in self.runs]


def verification_history(version: Version, *, files_readable: bool = True) -> VerificationHistory:
    """The runs of a version that looked at it, newest first, and what its pages say about them; for a reader to
    whom its files are closed (`files_readable` False), without the run messages that may quote the notebook."""
    runs = list(version.runs.filter(_attempts()).exclude(finished_at=None)
                .defer("logs", "report").order_by("-finished_at", "-id"))
    latest = next((run for run in runs if run.status == ExecutionRun.Status.FINISHED), None)
    results = [run for run in runs if result_of(run)]
    if not results:
        return VerificationHistory(latest, False, "", runs, files_readable=files_readable)
    streak = list(_leading_streak(results))
    before = results[len(streak)] if len(streak) < len(results) else None
    previous = results[1] if len(results) > 1 else None
    changed = previous is not None and result_of(previous) != result_of(results[0])
    summary = _summary(results[0], streak[-1], before, files_readable=files_readable)
    return VerificationHistory(latest, changed, summary, runs, results[0], previous, files_readable)


def _leading_streak(runs: list[ExecutionRun]):
    for run in runs:
        if is_reproducible(run) != is_reproducible(runs[0]):
            return
        yield run


def _summary(latest: ExecutionRun, streak_start: ExecutionRun, before: ExecutionRun | None, *,
             files_readable: bool) -> str:
    state = "reproducible" if is_reproducible(latest) else "not reproducible"
    reason = _reason(latest, files_readable=files_readable)
    why = "" if is_reproducible(latest) or not reason else f": {reason}"
    if before is None:
        since = f"; {state} since {_day(streak_start.finished_at)}" if streak_start.pk != latest.pk else ""
        return f"{result_label(latest)} on {_day(latest.finished_at)}{since}{why if since else ''}"
    return (f"{result_label(before)} on {_day(before.finished_at)}; {state} since "
            f"{_day(streak_start.finished_at)}{why}")


def _day(moment: datetime) -> str:
    return moment.date().isoformat()


def reverification_recorded(run: ExecutionRun) -> None:
    """Inside the transaction that ended a re-verification run (finished, or error after its retries): e-mail the
    owners and moderators after the commit when the verdict changed."""
    history = verification_history(run.version)
    if history.latest_result is None or history.latest_result.pk != run.pk or not history.changed:
        return
    recipients = _recipients(run.version)
    if not recipients:
        return
    version, before = run.version, history.previous_result
    subject = f"[nbarchive] Re-verification changed: {version.title}"
    reason = f" ({_reason(run)})" if _reason(run) else ""
    body = (f"The re-verification of \"{version.title}\" ({version.doi}) changed its result:\n\n"
            f"Before: {result_label(before)} on {_day(before.finished_at)}\n"
            f"Now: {result_label(run)} on {_day(run.finished_at)}{reason}\n\n"
            f"{history.summary}\n\n{version_landing_url(version)}\n")
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients,
                                            fail_silently=True))


def _recipients(version: Version) -> list[str]:
    users = {*version.record.owners.filter(is_active=True), *hooks.moderators_of(version),
             *get_user_model().objects.filter(groups__name=MODERATORS_GROUP, is_active=True)}
    return sorted({user.email for user in users if user.email})
