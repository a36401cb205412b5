"""Health probes: `/health/live` (the process answers) and `/health/ready` (it can do its work).

Ready checks, in parallel and each bounded by HEALTH_CHECK_TIMEOUT: the database, the broker, a Celery worker
consuming each of WORKER_QUEUES (a broadcast asking the workers which queues they consume, answered within
HEALTH_WORKER_TIMEOUT: `celery inspect active_queues`, i.e. a ping that also names the queues), the object store
and the backup target. The answer names every check with its outcome; a failure says what went wrong in words
passed through redaction.py, never with a URL's credentials or a key.

Our own module rather than django-health-check: that package reports one status per plugin, has no "a worker on
each of these queues" check nor one for our backup tier, and puts exception text in its answer unfiltered; what is
needed here is five small functions and one JSON answer.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from django.conf import settings
from django.core.files.storage import storages
from django.db import connection, connections

from repository.observability.redaction import redact

LIVE, READY = "/health/live", "/health/ready"


class NotReady(Exception):
    """A check found its component unusable; the message is shown as it is."""


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def check_broker() -> dict:
    from repository.celery import app

    # Short socket timeouts: a broker that does not answer must fail the probe, not hang it.
    options = {"socket_connect_timeout": settings.HEALTH_CHECK_TIMEOUT, "socket_timeout": settings.HEALTH_CHECK_TIMEOUT}
    with app.connection_for_write(transport_options=options) as broker:
        broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                 timeout=settings.HEALTH_CHECK_TIMEOUT)
    return {}


def check_workers() -> dict:
    from repository.celery import app

    replies = app.control.inspect(timeout=settings.HEALTH_WORKER_TIMEOUT).active_queues() or {}
    consumers = {queue: 0 for queue in settings.WORKER_QUEUES}
    for queues in replies.values():
        for queue in queues or []:
            if queue.get("name") in consumers:
                consumers[queue["name"]] += 1
    missing = [queue for queue, count in consumers.items() if not count]
    if missing:
        raise NotReady(f"no worker answered for queue {', '.join(missing)} within {settings.HEALTH_WORKER_TIMEOUT} s",
                       {"queues": consumers})
    return {"queues": consumers}


def check_object_store() -> dict:
    from repository.integrations import s3

    storage = storages["blobs"]
    if s3.is_s3(storage):
        s3.bucket_of(storage).check(what="checking that the object store answers")
    else:
        _writable_directory(Path(storage.location), "the file storage directory")
    return {}


def check_backup_target() -> dict:
    from repository.backup.targets import LocalDirectoryTarget, target_from_settings

    target = target_from_settings()
    if isinstance(target, LocalDirectoryTarget):
        target.check_writable()
    else:
        target.check()
    return {}


def _writable_directory(path: Path, what: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK | os.X_OK):
        raise NotReady(f"{what} is not writable")


CHECKS = {
    "database": check_database,
    "broker": check_broker,
    "workers": check_workers,
    "object_store": check_object_store,
    "backup_target": check_backup_target,
}


def readiness() -> tuple[bool, dict]:
    """Run every check at once; return (ready, the answer's body)."""
    secrets = None  # computed once below, shared by every failure message
    executor = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="health")
    futures = {name: executor.submit(_timed, check) for name, check in CHECKS.items()}
    wait(futures.values(), timeout=settings.HEALTH_CHECK_TIMEOUT)
    executor.shutdown(wait=False, cancel_futures=True)
    results = {}
    for name, future in futures.items():
        if not future.done():
            results[name] = {"ok": False, "error": f"no answer within {settings.HEALTH_CHECK_TIMEOUT} s"}
            continue
        outcome = future.result()
        if "error" in outcome:
            if secrets is None:
                from repository.observability.redaction import known_secrets

                secrets = known_secrets()
            outcome["error"] = redact(outcome["error"], secrets)[:500]
        results[name] = outcome
    failed = [name for name, result in results.items() if not result["ok"]]
    return not failed, {"status": "not ready" if failed else "ready", "failed": failed, "checks": results}


def _timed(check) -> dict:
    started = time.monotonic()
    try:
        extra = check()
        return {"ok": True, "seconds": round(time.monotonic() - started, 4), **extra}
    except NotReady as exc:
        extra = exc.args[1] if len(exc.args) > 1 else {}
        return {"ok": False, "error": str(exc.args[0]), **extra}
    except Exception as exc:  # noqa: BLE001 - whatever broke, the probe reports it instead of failing itself
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        # Each check ran in a thread of its own, with its own database connection: do not leave it open.
        connections.close_all()
