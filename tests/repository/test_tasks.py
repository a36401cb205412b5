"""The Celery hop for real: submitting a draft sends a task over Redis to a worker on the verification queue,
which runs the notebook and records the verdict."""

import socket
import time

import pytest
from django.db import connection

from repository.models import ExecutionRun
from repository.services.submission import version_submit
from tests.repository.services.test_runs import SANDBOX_READY, demo_draft

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox]


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def verification_worker():
    if not _redis_reachable():
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable: no real Celery worker for this test")
    if connection.vendor != "postgresql":
        pytest.skip("a worker thread needs a database other connections can see (PostgreSQL)")
    if not SANDBOX_READY:
        pytest.skip("bubblewrap or the kernel environment is missing")
    from celery.contrib.testing.worker import start_worker

    from repository.celery import app

    previous = (app.conf.broker_url, app.conf.result_backend)
    app.conf.broker_url = "redis://127.0.0.1:6379/15"
    app.conf.result_backend = None
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=["verification"],
                          loglevel="WARNING", shutdown_timeout=30):
            yield
    finally:
        app.conf.broker_url, app.conf.result_backend = previous


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
