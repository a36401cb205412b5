"""Who is executing a run, and what happens when they die.

A worker that starts a run claims it: status `running`, a fresh claim token, `heartbeat_at` now. While it works a
thread renews `heartbeat_at` every RUN_HEARTBEAT_SECONDS. A run whose heartbeat is older than RUN_ORPHAN_SECONDS
was left by a worker that died (the pool child killed, the whole worker killed, the database lost at the end of
the run), and its owner's failure is ours, never the notebook's:
- the task redelivered to another worker (acks_late) takes it over, instead of finding it `running` and leaving;
  redelivered at once, before the lease lapsed, it looks again once it has (repository/tasks.py);
- the beat job (`runs_reap`) puts it back in the queue, and after RUN_MAX_ATTEMPTS ends it `error` with a message
  for the operator. A run still `running` past its whole time limit is treated the same, heartbeat or not.
Only the holder of the current claim may record a result (`claim_is_current`): a worker that wakes up after its
run was taken over drops its late result instead of overwriting the new attempt's.
"""

import logging
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from repository.models import ExecutionRun
from repository.services.reverification import reverification_recorded

logger = logging.getLogger(__name__)


def orphaned_before(now: datetime) -> datetime:
    """Heartbeats older than this belong to workers that are gone."""
    return now - timedelta(seconds=settings.RUN_ORPHAN_SECONDS)


def overdue_before(now: datetime) -> datetime:
    """Runs started before this have outlived every limit a live worker keeps (staging, the run, a margin)."""
    budget = settings.STAGING_TOTAL_SECONDS + settings.RUNNER_NOTEBOOK_TIMEOUT_SECONDS + settings.RUN_ORPHAN_SECONDS
    return now - timedelta(seconds=budget)


def is_orphaned(run: ExecutionRun, now: datetime) -> bool:
    if run.status != ExecutionRun.Status.RUNNING:
        return False
    last_sign_of_life = run.heartbeat_at or run.started_at
    return (last_sign_of_life is None or last_sign_of_life < orphaned_before(now)
            or (run.started_at is not None and run.started_at < overdue_before(now)))


def run_claim(*, run_pk: int) -> ExecutionRun | None:
    """Claim a queued run, or take over an orphaned one; None when someone else holds it or it has ended."""
    now = timezone.now()
    with transaction.atomic():
        run = ExecutionRun.objects.select_for_update().filter(pk=run_pk).first()
        if run is None:
            return None
        taking_over = is_orphaned(run, now)
        if run.status != ExecutionRun.Status.QUEUED and not taking_over:
            return None
        if taking_over:
            logger.warning("Run %s was left running by a worker that stopped answering; taking it over.", run.run_id)
        run.status = ExecutionRun.Status.RUNNING
        run.started_at = run.heartbeat_at = now
        run.claim = uuid.uuid4().hex
        run.attempts += 1
        run.save(update_fields=["status", "started_at", "heartbeat_at", "claim", "attempts"])
    return run


def run_held_elsewhere(*, run_pk: int) -> bool:
    """The run is `running` under someone else's claim: a live worker's, or a dead one's whose lease has not
    lapsed yet."""
    return ExecutionRun.objects.filter(pk=run_pk, status=ExecutionRun.Status.RUNNING).exists()


def claim_is_current(run: ExecutionRun) -> bool:
    return ExecutionRun.objects.filter(pk=run.pk, claim=run.claim).exists()


@contextmanager
def run_heartbeat(run: ExecutionRun):
    """Renew the run's heartbeat from a thread while the body runs (the sandbox can take half an hour)."""
    stop = threading.Event()
    thread = threading.Thread(target=_beat, args=(run.pk, run.claim, stop), daemon=True,
                              name=f"heartbeat-{run.run_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _beat(run_pk: int, claim: str, stop: threading.Event) -> None:
    try:
        while not stop.wait(settings.RUN_HEARTBEAT_SECONDS):
            try:
                ExecutionRun.objects.filter(pk=run_pk, claim=claim, status=ExecutionRun.Status.RUNNING).update(
                    heartbeat_at=timezone.now())
            except DatabaseError:  # the database is away for a moment; the next beat tries again
                logger.warning("Could not renew the heartbeat of run %s", run_pk, exc_info=True)
    finally:
        connection.close()  # this thread's own connection


def runs_reap(*, now: datetime | None = None) -> list[str]:
    """Requeue orphaned and overdue runs, or end them `error` once they used their attempts; one line each."""
    from repository.tasks import run_verification_task

    now = now or timezone.now()
    lines = []
    with transaction.atomic():
        running = (ExecutionRun.objects.select_for_update(skip_locked=True)
                   .filter(status=ExecutionRun.Status.RUNNING).order_by("started_at"))
        for run in running:
            if not is_orphaned(run, now):
                continue
            lines.append(_reap_one(run, now))
            if run.status == ExecutionRun.Status.QUEUED:
                run_pk = run.pk
                transaction.on_commit(lambda pk=run_pk: run_verification_task.apply_async(
                    args=[pk], queue="verification"))
    for line in lines:
        logger.warning(line)
    return lines


def _reap_one(run: ExecutionRun, now: datetime) -> str:
    if run.attempts >= settings.RUN_MAX_ATTEMPTS:
        run.status = ExecutionRun.Status.ERROR
        run.finished_at = now
        run.message = (f"The run could not be carried out: the worker running it stopped answering "
                       f"{run.attempts} times (killed, out of memory, or the database was lost). Nothing is "
                       "known about the notebook; an operator should look at the verification workers.")
        run.error_code = "worker_lost"
        run.save(update_fields=["status", "finished_at", "message", "error_code"])
        if run.purpose == ExecutionRun.Purpose.REVERIFICATION:
            reverification_recorded(run)  # an attempt, kept in the history; the operator's, so no change of result
        return f"run {run.run_id}: ended as error after {run.attempts} attempts"
    run.status = ExecutionRun.Status.QUEUED
    run.started_at = run.heartbeat_at = None
    run.claim = ""
    run.save(update_fields=["status", "started_at", "heartbeat_at", "claim"])
    return f"run {run.run_id}: its worker stopped answering; queued again (attempt {run.attempts + 1})"
