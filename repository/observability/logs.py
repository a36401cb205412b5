"""Structured logs: one JSON object per line (python-json-logger) or a readable line, each with the request id
(`X-Request-ID`, taken from the client or the proxy when it is sane, else made here), which also follows every
Celery task the request queues, and each passed through redaction.py as its last step.

python-json-logger rather than structlog or django-structlog: the project and its libraries log through the
standard library, and what is wanted is a formatter for those records plus a request id; a second logging API
would only add a way to log that bypasses neither.

The request id lives in a context variable: set by RequestIdMiddleware for a request, put into the headers of every
task published meanwhile (before_task_publish), and set again in the worker while that task runs (task_prerun).
"""

import logging
import re
import time
import uuid
from contextvars import ContextVar

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.conf import settings
from pythonjsonlogger.json import JsonFormatter as _PythonJsonFormatter

from repository.observability.redaction import redact

access_logger = logging.getLogger("nbarchive.request")
request_id_var: ContextVar[str] = ContextVar("nbarchive_request_id", default="")
HEADER = "X-Request-ID"
TASK_HEADER = "nbarchive_request_id"
# Taken from the client (or the proxy in front) only when it looks like an id: it goes into every log line.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


def current_request_id() -> str:
    return request_id_var.get()


class ContextFilter(logging.Filter):
    """Adds request_id, and in a worker the task's id and name, to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get() or "-"
        task = _current_task()
        if task is not None:
            record.task_id, record.task_name = task.request.id, task.name
        return True


def _current_task():
    from celery import current_task

    task = current_task._get_current_object() if current_task else None
    return task if task is not None and getattr(task.request, "id", None) else None


class JsonFormatter(_PythonJsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(levelname)s %(name)s %(message)s %(request_id)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        # Django's request-failure records carry the request object: its repr adds nothing the path does not say.
        kwargs.setdefault("reserved_attrs", [*_reserved(), "request"])
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _reserved() -> list[str]:
    from pythonjsonlogger.core import RESERVED_ATTRS

    return list(RESERVED_ATTRS)


class RequestIdMiddleware:
    """Gives each request its id (the client's X-Request-ID when sane, else a new one), answers with it, and
    logs one line per request in JSON mode (runserver and gunicorn log their own plain lines otherwise)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(HEADER, "")
        request_id = incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            # Probes every few seconds would drown the log; their answers are for the prober.
            if settings.LOG_FORMAT == "json" and not request.path.startswith("/health/"):
                match = getattr(request, "resolver_match", None)
                access_logger.info("%s %s %s", request.method, request.get_full_path(), response.status_code,
                                   extra={"method": request.method, "path": request.get_full_path(),
                                          "status": response.status_code, "view": match.view_name if match else "",
                                          "duration_ms": round((time.monotonic() - started) * 1000, 1)})
            return response
        finally:
            request_id_var.reset(token)


@before_task_publish.connect
def _request_id_into_task_headers(headers=None, **kwargs):
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers[TASK_HEADER] = request_id


@task_prerun.connect
def _request_id_from_task_headers(task=None, **kwargs):
    request_id = getattr(task.request, TASK_HEADER, None) or (task.request.headers or {}).get(TASK_HEADER)
    request_id_var.set(request_id or "")


@task_postrun.connect
def _forget_request_id(**kwargs):
    request_id_var.set("")
