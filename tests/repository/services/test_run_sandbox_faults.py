"""A sandbox that cannot start on the worker is the operator's problem all the way to the run row: the run goes
back to the queue to be retried, and after the task's last retry it ends `error` with the operator's message,
never with a verdict about the notebook (the runner's side: tests/repository/runners/test_sandbox_faults.py)."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from repository.models import ExecutionRun
from repository.services.runs import InfrastructureError, run_execute, run_request
from repository.tasks import run_verification_task
from tests.factories import demo_draft
from tests.sandbox import needs_sandbox

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox, needs_sandbox]


@pytest.fixture
def kernel_env_in_a_private_folder(settings):
    """The app installed under a 0700 folder (a home folder), with its kernel environment inside."""
    if os.geteuid() != 0:
        pytest.skip("only a root worker runs the sandbox as another uid")
    private = Path(tempfile.mkdtemp(prefix="nbarchive-test-0700-"))
    kernel_python = Path(settings.RUNNER_KERNEL_PYTHON)
    (private / "kernel-env").symlink_to(kernel_python.parent.parent)
    settings.RUNNER_KERNEL_PYTHON = str(private / "kernel-env" / "bin" / kernel_python.name)
    yield private
    shutil.rmtree(private)


def test_a_sandbox_that_cannot_start_is_retried_and_finally_an_error_without_a_verdict(
        user, no_queue, kernel_env_in_a_private_folder):
    run = run_request(version=demo_draft(user), requested_by=user)

    with pytest.raises(InfrastructureError, match="The sandbox could not start on this worker"):
        run_execute(run_pk=run.pk)
    waiting = ExecutionRun.objects.get(pk=run.pk)
    assert waiting.status == ExecutionRun.Status.QUEUED and waiting.verdict == ""  # for the task's retry

    run_verification_task.apply(args=[run.pk], retries=run_verification_task.max_retries)

    ended = ExecutionRun.objects.get(pk=run.pk)
    assert ended.status == ExecutionRun.Status.ERROR and ended.verdict == ""
    assert ended.message.startswith("The run could not be carried out: The sandbox could not start on this worker")
    assert "chmod o+x" in ended.message
