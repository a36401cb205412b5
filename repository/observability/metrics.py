"""Prometheus metrics at /metrics (prometheus-client).

Two kinds:
- Request latency by view, counted in each web process as requests pass (MetricsMiddleware). Under gunicorn set
  PROMETHEUS_MULTIPROC_DIR (an empty directory per start) so that every worker's counts are summed whichever
  worker answers the scrape; deploy/gunicorn.conf.py removes a dead worker's share.
- Everything else is read at scrape time (StateCollector): Celery queue depths from the broker; runs by status and
  verdict, the DOI outbox (pending, needing attention, overdue), bytes stored, the age of the last successful backup and
  fixity failures from the database. Nothing to keep in step, and any process (or one web replica) can answer.

django-prometheus was not taken: its per-model and per-database metrics are not what is asked for, and it labels
latency by view only in a histogram whose buckets and names we would have to take as they come.
"""

import ipaddress
import logging
import os
import secrets
import time

from django.conf import settings
from django.db.models import Count, F, Max, Q, Sum
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

REQUEST_LATENCY = Histogram(
    "nbarchive_http_request_duration_seconds", "Time to answer a request, by view, method and status class.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The view's name, never the path: paths hold ids, which would make a series per record.
        view = getattr(request, "metrics_view", None) or (match.view_name if match and match.view_name else "")
        view = view or "unresolved"
        REQUEST_LATENCY.labels(view, request.method if request.method in _METHODS else "other",
                               f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
        return response


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def may_read_metrics(request) -> bool:
    """A bearer METRICS_TOKEN, or a direct client from METRICS_ALLOWED_CIDRS. A request that passed a proxy does
    not count as local: behind nginx on the same machine every client would otherwise look like loopback."""
    token = settings.METRICS_TOKEN
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and secrets.compare_digest(presented.strip().encode(), token.encode()):
        return True
    if any(header in request.headers for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded")):
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in settings.METRICS_ALLOWED_CIDRS)


def exposition() -> bytes:
    """The text format: this process's (or all web processes') request metrics, then the state read now."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        requests = CollectorRegistry()
        multiprocess.MultiProcessCollector(requests)
    else:
        requests = REGISTRY
    state = CollectorRegistry()
    state.register(StateCollector())
    return generate_latest(requests) + generate_latest(state)


class StateCollector:
    """Gauges read from the broker and the database at scrape time. A part that cannot be read is left out and
    logged; nbarchive_scrape_errors says which."""

    def collect(self):
        errors = GaugeMetricFamily("nbarchive_scrape_errors", "1 when a part of the state could not be read now.",
                                   labels=["part"])
        for part, read in (("queues", _queue_depths), ("runs", _runs), ("dois", _dois), ("storage", _storage),
                           ("backup", _backup)):
            try:
                yield from read()
                errors.add_metric([part], 0)
            except Exception:  # noqa: BLE001 - one unreadable part must not cost the whole scrape
                logger.exception("metrics: could not read %s", part)
                errors.add_metric([part], 1)
        yield errors


def _queue_depths():
    from repository.celery import app

    depth = GaugeMetricFamily("nbarchive_celery_queue_messages", "Messages waiting in a Celery queue.",
                              labels=["queue"])
    options = {"socket_connect_timeout": 2, "socket_timeout": 2}
    with app.connection_for_read(transport_options=options) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        channel = connection.default_channel
        for queue in settings.WORKER_QUEUES:
            try:
                _, messages, _ = channel.queue_declare(queue=queue, passive=True)
            except connection.channel_errors:
                # Redis keeps no empty queue, and a queue nobody declared yet has no messages either.
                messages = 0
                channel = connection.channel()
            depth.add_metric([queue], messages)
    yield depth


def _runs():
    from repository.models import ExecutionRun

    runs = GaugeMetricFamily("nbarchive_runs", "Verification runs by status and verdict.", labels=["status", "verdict"])
    for row in ExecutionRun.objects.values("status", "verdict").annotate(n=Count("pk")).order_by():
        runs.add_metric([row["status"], row["verdict"] or "none"], row["n"])
    yield runs


def _dois():
    from repository.models import DoiOutbox

    counts = DoiOutbox.objects.aggregate(
        pending=Count("pk", filter=Q(synced_generation__lt=F("generation"), needs_attention=False)),
        attention=Count("pk", filter=Q(needs_attention=True)))
    yield GaugeMetricFamily("nbarchive_doi_outbox_pending", "DOIs waiting to be synced with the registrar.",
                            value=counts["pending"])
    yield GaugeMetricFamily("nbarchive_doi_outbox_needs_attention",
                            "DOIs the registrar refused: an admin must look.", value=counts["attention"])
    from repository.services.doi_alerts import doi_overdue

    yield GaugeMetricFamily("nbarchive_doi_outbox_overdue",
                            "DOIs not in sync with the registrar for longer than DOI_PENDING_ALERT_MINUTES.",
                            value=doi_overdue().count())


def _storage():
    from repository.models import Blob

    totals = Blob.objects.aggregate(size=Sum("size"), count=Count("pk"))
    yield GaugeMetricFamily("nbarchive_uploaded_bytes", "Bytes of all stored files (uploads, each content once).",
                            value=totals["size"] or 0)
    yield GaugeMetricFamily("nbarchive_blobs", "Stored files (distinct contents).", value=totals["count"])


def _backup():
    from repository.backup.models import BackupRun, FixityCheck

    last = BackupRun.objects.filter(status=BackupRun.Status.SUCCEEDED).aggregate(at=Max("finished_at"))["at"]
    age = GaugeMetricFamily("nbarchive_backup_age_seconds",
                            "Seconds since the last successful backup finished (absent: never).")
    if last is not None:
        age.add_metric([], (timezone.now() - last).total_seconds())
    yield age
    failures = FixityCheck.objects.filter(Q(primary_ok=False) | Q(backup_ok=False)).count()
    yield GaugeMetricFamily("nbarchive_fixity_failures", "Files whose last fixity check failed, primary or backup.",
                            value=failures)
