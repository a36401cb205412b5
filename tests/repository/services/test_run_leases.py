"""Runs whose worker died: taken over by the redelivered task, requeued or ended by the reaper, never stuck
`running` and never given a verdict about the notebook (services/run_leases.py)."""

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from repository.models import ExecutionRun
from repository.services import runs
from repository.services.run_leases import run_claim, runs_reap
from repository.services.runs import run_execute, run_request
from tests.factories import demo_draft
from tests.sandbox import needs_sandbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_run(user, no_queue):
    return run_request(version=demo_draft(user), requested_by=user)


def left_running(run: ExecutionRun, *, silent_for: timedelta, attempts: int = 1) -> ExecutionRun:
    """The run as a worker that died `silent_for` ago leaves it."""
    then = timezone.now() - silent_for
    ExecutionRun.objects.filter(pk=run.pk).update(status=ExecutionRun.Status.RUNNING, started_at=then,
                                                  heartbeat_at=then, claim="dead-worker", attempts=attempts)
    return ExecutionRun.objects.get(pk=run.pk)


def test_a_queued_run_is_claimed_once(queued_run):
    claimed = run_claim(run_pk=queued_run.pk)

    assert claimed.status == ExecutionRun.Status.RUNNING and claimed.attempts == 1 and claimed.claim
    assert run_claim(run_pk=queued_run.pk) is None  # a second delivery while the first worker is alive


def test_a_redelivered_task_takes_over_a_run_whose_worker_stopped_answering(queued_run, settings):
    settings.RUN_ORPHAN_SECONDS = 60
    left_running(queued_run, silent_for=timedelta(minutes=5))

    claimed = run_claim(run_pk=queued_run.pk)

    assert claimed is not None and claimed.claim != "dead-worker" and claimed.attempts == 2


def test_a_run_with_a_live_heartbeat_is_not_taken_over(queued_run, settings):
    settings.RUN_ORPHAN_SECONDS = 60
    left_running(queued_run, silent_for=timedelta(seconds=5))

    assert run_claim(run_pk=queued_run.pk) is None
    assert runs_reap() == []


def test_the_reaper_queues_an_orphaned_run_again_and_sends_its_task(queued_run, settings, no_queue,
                                                                    django_capture_on_commit_callbacks):
    settings.RUN_ORPHAN_SECONDS = 60
    left_running(queued_run, silent_for=timedelta(minutes=5))
    no_queue.clear()

    with django_capture_on_commit_callbacks(execute=True):
        lines = runs_reap()

    run = ExecutionRun.objects.get(pk=queued_run.pk)
    assert run.status == ExecutionRun.Status.QUEUED and run.verdict == ""
    assert len(lines) == 1 and "queued again (attempt 2)" in lines[0]
    assert len(no_queue) == 1  # the task is sent again


def test_a_run_past_its_whole_time_limit_is_reaped_even_with_a_heartbeat(queued_run, settings):
    settings.RUN_ORPHAN_SECONDS = 60
    run = left_running(queued_run, silent_for=timedelta(seconds=1))
    started = timezone.now() - timedelta(seconds=settings.STAGING_TOTAL_SECONDS
                                         + settings.RUNNER_NOTEBOOK_TIMEOUT_SECONDS + 120)
    ExecutionRun.objects.filter(pk=run.pk).update(started_at=started)

    assert len(runs_reap()) == 1
    assert ExecutionRun.objects.get(pk=run.pk).status == ExecutionRun.Status.QUEUED


def test_after_its_attempts_the_reaper_ends_the_run_as_an_error_without_a_verdict(queued_run, settings):
    settings.RUN_ORPHAN_SECONDS, settings.RUN_MAX_ATTEMPTS = 60, 3
    left_running(queued_run, silent_for=timedelta(minutes=5), attempts=3)

    runs_reap()

    run = ExecutionRun.objects.get(pk=queued_run.pk)
    assert run.status == ExecutionRun.Status.ERROR and run.verdict == ""
    assert "stopped answering 3 times" in run.message
    # A re-run is possible again: nothing is left active.
    assert run_request(version=run.version, requested_by=None).status == ExecutionRun.Status.QUEUED


def test_a_worker_that_wakes_up_after_a_takeover_does_not_overwrite_the_new_attempt(queued_run, settings):
    settings.RUN_ORPHAN_SECONDS = 60
    first = run_claim(run_pk=queued_run.pk)
    left_running(first, silent_for=timedelta(minutes=5))
    ExecutionRun.objects.filter(pk=first.pk).update(claim=first.claim)  # the first worker's claim, gone quiet
    second = run_claim(run_pk=queued_run.pk)

    runs._finish(first, verdict="reproduced", message="late result of the first worker")

    run = ExecutionRun.objects.get(pk=queued_run.pk)
    assert run.status == ExecutionRun.Status.RUNNING and run.claim == second.claim and run.verdict == ""


@pytest.mark.sandbox
@needs_sandbox
def test_a_run_whose_database_dropped_at_the_end_is_finished_by_the_next_attempt(queued_run, settings,
                                                                                   monkeypatch):
    settings.RUN_ORPHAN_SECONDS = 60
    real_finish = runs._finish

    def database_gone(run, **fields):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(runs, "_finish", database_gone)
    with pytest.raises(OperationalError):
        run_execute(run_pk=queued_run.pk)
    assert ExecutionRun.objects.get(pk=queued_run.pk).status == ExecutionRun.Status.RUNNING  # stuck, as reported

    monkeypatch.setattr(runs, "_finish", real_finish)
    ExecutionRun.objects.filter(pk=queued_run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    runs_reap()
    run = run_execute(run_pk=queued_run.pk)

    assert run.status == ExecutionRun.Status.FINISHED and run.verdict == "reproduced" and run.attempts == 2
