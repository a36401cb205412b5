"""A real Celery worker (a thread of this process) on Redis, for the tests of the Celery hop."""

import contextlib
import socket

import pytest
from django.db import connection


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
