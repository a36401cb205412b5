"""Real Celery workers on Redis: a thread of this process for the tests of the Celery hop, or a `celery worker`
process of its own for the tests that kill it."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.processes import parent_pid, process_descendants


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def celery_worker_on_redis(*, queues: list[str], redis_db: int = 15):
    if not redis_reachable():
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable: no real Celery worker for this test")
    if connection.vendor != "postgresql":
        pytest.skip("a worker thread needs a database other connections can see (PostgreSQL)")
    from celery.contrib.testing.worker import start_worker

    from repository.celery import app

    previous = (app.conf.broker_url, app.conf.result_backend)
    # Tasks sent earlier in the run (on commit) opened a producer pool on the previous broker; close it so that
    # this test's tasks go to Redis, and again afterwards so later tests do not send them here.
    _forget_broker_connections(app)
    app.conf.broker_url = f"redis://127.0.0.1:6379/{redis_db}"
    app.conf.result_backend = None
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=queues,
                          loglevel="WARNING", shutdown_timeout=30):
            yield
    finally:
        _forget_broker_connections(app)
        app.conf.broker_url, app.conf.result_backend = previous


def _forget_broker_connections(app) -> None:
    # Celery keeps its connection and producer pools for the app's lifetime; app.close() would also unregister
    # the app (and with it the tasks shared_task resolves), so only the pools are dropped.
    app._pool = None
    app.amqp._producer_pool = None


class WorkerProcess:
    """A `celery worker` started as a process of its own (prefork pool), so that a test can kill it for real."""

    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[int]:
        return process_descendants(self.pid)

    def pool_children(self) -> list[int]:
        """The prefork pool's processes: the worker's direct children."""
        return [pid for pid in process_descendants(self.pid) if parent_pid(pid) == self.pid]

    def kill_everything(self) -> None:
        """SIGKILL the worker and its pool at once, as an out-of-memory killer or a lost machine would."""
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the group this helper started (start_new_session)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)


@contextlib.contextmanager
def worker_process_on_redis(*, queues: list[str], redis_db: int, var_dir: Path, environment: dict[str, str]):
    """Start `celery worker` (prefork, one pool process) on Redis against this test's PostgreSQL database and
    storage folder (`var_dir`: its blobs live in var_dir/blobs, as the `local_blob_storage` fixture puts them),
    and point this process's Celery app at the same Redis database so that the tasks the test queues reach it.
    The test must use `django_db(transaction=True)`: the worker only sees committed rows."""
    if not redis_reachable():
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable: no real Celery worker for this test")
    if connection.vendor != "postgresql":
        pytest.skip("a worker process needs a database it can share with the test (PostgreSQL)")
    import redis

    from repository.celery import app

    broker_url = f"redis://127.0.0.1:6379/{redis_db}"
    redis.Redis.from_url(broker_url).flushdb()  # nothing left over from an earlier run reaches this worker
    database = connection.settings_dict
    credentials = database["USER"] + (f":{database['PASSWORD']}" if database.get("PASSWORD") else "")
    env = {key: value for key, value in os.environ.items() if key != "NBARCHIVE_TEST_DATABASE_NAME"}
    env.update({
        "DATABASE_URL": f"postgres://{credentials}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "CELERY_BROKER_URL": broker_url, "NBARCHIVE_VAR_DIR": str(var_dir), "DJANGO_DEBUG": "1", "RUNNER": "local",
        **environment,
    })
    log_path = var_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "repository", "worker", "--pool=prefork", "--concurrency=1",
             "-Q", ",".join(queues), "--loglevel=INFO", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"faults-{uuid.uuid4().hex[:8]}@%h"],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = WorkerProcess(process, log_path)
    previous = (app.conf.broker_url, app.conf.result_backend)
    _forget_broker_connections(app)
    app.conf.broker_url, app.conf.result_backend = broker_url, None
    try:
        deadline = time.monotonic() + 60
        while " ready." not in worker.log():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{worker.log()[-3000:]}")
            time.sleep(0.2)
        yield worker
    finally:
        if process.poll() is None:
            worker.kill_everything()
        _forget_broker_connections(app)
        app.conf.broker_url, app.conf.result_backend = previous
