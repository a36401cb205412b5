"""The Celery hop for real: submitting a draft sends a task over Redis to a worker on the verification queue,
which runs the notebook and records the verdict."""

import time

import pytest

from repository.models import ExecutionRun
from repository.services.submission import version_submit
from tests.celery_worker import celery_worker_on_redis
from tests.factories import demo_draft
from tests.sandbox import SANDBOX_READY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox]


@pytest.fixture
def verification_worker():
    if not SANDBOX_READY:
        pytest.skip("bubblewrap or the kernel environment is missing")
    with celery_worker_on_redis(queues=["verification"]):
        yield


def test_submitting_runs_the_verification_on_a_real_worker(user, verification_worker):
    version = demo_draft(user)

    version_submit(version=version, actor=user)

    deadline = time.monotonic() + 120
    run = ExecutionRun.objects.get(version=version)
    while run.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        run.refresh_from_db()
    assert run.status == "finished", run.message
    assert run.verdict == "reproduced"
