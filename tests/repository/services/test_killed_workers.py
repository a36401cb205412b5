"""A verification worker killed for real while it runs a notebook: the pool process that runs it, or the whole
worker. The run must not stay `running` for ever: the task redelivered after the kill (acks_late) takes it over
once the dead worker's lease has lapsed; after a whole worker is lost, the reaper (the beat job `runs_reap_task`,
sent here as beat would) queues it again for a fresh worker, or ends it `error` once it used its attempts, and a
re-run is then accepted. Each way the notebook finally gets its verdict, and nothing of the killed attempt keeps
running the notebook.

The workers are `celery worker` processes (prefork) on Redis against this test's PostgreSQL database, with a
heartbeat every second and a lease of four (RUN_HEARTBEAT_SECONDS, RUN_ORPHAN_SECONDS)."""

import os
import signal
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from repository.models import ExecutionRun
from repository.services.drafts import record_create
from repository.services.runs import run_request
from tests.celery_worker import worker_process_on_redis
from tests.factories import IMAGE, upload
from tests.processes import command_line, is_alive, process_descendants
from tests.sandbox import SANDBOX_READY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox]

SHORT_LEASES = {"RUN_HEARTBEAT_SECONDS": "1", "RUN_ORPHAN_SECONDS": "4"}
NOTEBOOK_SECONDS = 8
REDIS_DB = 13  # apart from the databases of the in-process worker tests (14, 15)


@pytest.fixture(autouse=True)
def sandbox_ready():
    if not SANDBOX_READY:
        pytest.skip("bubblewrap or the kernel environment is missing")


def sleeping_version(user):
    """A draft whose notebook sleeps NOTEBOOK_SECONDS and prints, uploaded with the output it will print again."""
    notebook = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}})
    notebook.cells.append(new_code_cell(f"import time\ntime.sleep({NOTEBOOK_SECONDS})\nprint('slept')",
                                        execution_count=1,
                                        outputs=[new_output("stream", name="stdout", text="slept\n")]))
    version = record_create(owner=user, metadata={"title": "Sleeps", "description": "Sleeps", "license": "CC-BY-4.0",
                                                  "creators": [{"name": "Doe, Jane"}], "container_image": IMAGE})
    upload(version, user, "sleeps.ipynb", nbformat.writes(notebook).encode())
    return version


def wait_for(condition, *, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"gave up after {seconds:.0f} s waiting for {what}")


def collector_running_the_notebook(worker) -> int | None:
    """The collector of the run, once its kernel is up (and so inside the sleeping cell soon after)."""
    descendants = worker.descendants()
    collectors = [pid for pid in descendants if "kernel_collector.py" in command_line(pid)]
    kernels = [pid for pid in descendants if "ipykernel_launcher" in command_line(pid)]
    return collectors[0] if collectors and kernels else None


def run_of(version) -> ExecutionRun:
    return ExecutionRun.objects.filter(version=version).order_by("-id").first()


def ended(version) -> ExecutionRun | None:
    run = run_of(version)
    return run if run.status not in (ExecutionRun.Status.QUEUED, ExecutionRun.Status.RUNNING) else None


def assert_gone(pids: list[int]) -> None:
    """Nothing of the killed attempt keeps running the notebook (the collector dies with its worker, and the
    sandbox with the collector)."""
    wait_for(lambda: not any(is_alive(pid) for pid in pids), seconds=3,
             what=f"the killed attempt's collector and sandbox {pids} to end")


def test_a_run_whose_pool_process_is_killed_is_taken_over_by_its_redelivered_task(user, tmp_path):
    version = sleeping_version(user)
    with worker_process_on_redis(queues=["verification", "celery"], redis_db=REDIS_DB, var_dir=tmp_path,
                                 environment=SHORT_LEASES) as worker:
        run = run_request(version=version, requested_by=user)
        collector = wait_for(lambda: collector_running_the_notebook(worker), seconds=60,
                             what="the notebook to start running")
        pool_process = next(pid for pid in worker.pool_children() if collector in process_descendants(pid))
        attempt = [collector, *process_descendants(collector)]
        time.sleep(1)

        os.kill(pool_process, signal.SIGKILL)

        assert_gone(attempt)
        finished = wait_for(lambda: ended(version), seconds=90,
                            what=f"run {run.run_id} to end:\n{worker.log()[-3000:]}")

    assert finished.pk == run.pk
    assert finished.status == ExecutionRun.Status.FINISHED, finished.message
    assert finished.verdict == "reproduced" and finished.attempts == 2, (finished.verdict, finished.message)


def run_until_killed(version, user, tmp_path, environment) -> tuple[ExecutionRun, list[int]]:
    """Queue a run of `version` on a worker, and SIGKILL the whole worker while the notebook runs."""
    with worker_process_on_redis(queues=["verification", "celery"], redis_db=REDIS_DB, var_dir=tmp_path,
                                 environment=environment) as worker:
        run = run_request(version=version, requested_by=user)
        collector = wait_for(lambda: collector_running_the_notebook(worker), seconds=60,
                             what="the notebook to start running")
        attempt = [collector, *process_descendants(collector)]
        time.sleep(1)

        worker.kill_everything()
    return run, attempt


def reaped_by_beat(version):
    """What Celery beat sends every minute (the lease is 4 s here), until the run has left `running`."""
    from repository.tasks import runs_reap_task

    runs_reap_task.apply_async(queue="celery")
    time.sleep(1)
    run = run_of(version)
    return run if run.status != ExecutionRun.Status.RUNNING else None


def test_a_run_whose_whole_worker_is_killed_is_queued_again_by_the_reaper_and_run_by_a_fresh_worker(user, tmp_path):
    version = sleeping_version(user)
    run, attempt = run_until_killed(version, user, tmp_path, SHORT_LEASES)
    assert_gone(attempt)

    with worker_process_on_redis(queues=["verification", "celery"], redis_db=REDIS_DB, var_dir=tmp_path,
                                 environment=SHORT_LEASES) as fresh_worker:
        wait_for(lambda: reaped_by_beat(version), seconds=60,
                 what=f"the reaper to queue run {run.run_id} again:\n{fresh_worker.log()[-3000:]}")
        finished = wait_for(lambda: ended(version), seconds=90,
                            what=f"run {run.run_id} to end:\n{fresh_worker.log()[-3000:]}")

    assert finished.pk == run.pk and finished.status == ExecutionRun.Status.FINISHED, finished.message
    assert finished.verdict == "reproduced" and finished.attempts == 2


def test_a_run_whose_whole_worker_is_killed_is_ended_by_the_reaper_and_can_be_run_again(user, api, tmp_path):
    version = sleeping_version(user)
    one_attempt = {**SHORT_LEASES, "RUN_MAX_ATTEMPTS": "1"}
    run, attempt = run_until_killed(version, user, tmp_path, one_attempt)

    assert_gone(attempt)
    record_id = version.record.public_id
    assert api.post(f"/api/records/{record_id}/draft/runs").status_code == 409  # still `running`, for now

    with worker_process_on_redis(queues=["verification", "celery"], redis_db=REDIS_DB, var_dir=tmp_path,
                                 environment=one_attempt) as fresh_worker:
        gone = wait_for(lambda: reaped_by_beat(version), seconds=60,
                        what=f"the reaper to end run {run.run_id}:\n{fresh_worker.log()[-3000:]}")
        assert gone.pk == run.pk and gone.status == ExecutionRun.Status.ERROR and gone.verdict == ""
        assert "stopped answering" in gone.message

        response = api.post(f"/api/records/{record_id}/draft/runs")
        assert response.status_code == 202, response.content

        finished = wait_for(lambda: ended(version), seconds=90,
                            what=f"the re-run to end:\n{fresh_worker.log()[-3000:]}")

    assert finished.pk != run.pk
    assert finished.status == ExecutionRun.Status.FINISHED and finished.verdict == "reproduced", finished.message
