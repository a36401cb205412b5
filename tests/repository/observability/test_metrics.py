"""/metrics as Prometheus scrapes it: who may read it, and that each figure an operator watches is there and
right."""

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from repository.backup.models import BackupRun, FixityCheck
from repository.models import Blob, DoiOutbox, ExecutionRun
from tests.celery_worker import _forget_broker_connections, redis_reachable
from tests.factories import demo_draft

pytestmark = pytest.mark.django_db


def _samples(response) -> dict[tuple, float]:
    """{(name, (label, value), ...): value} of every sample in the answer."""
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_are_readable_from_loopback_or_with_the_token_only(client, settings):
    settings.METRICS_TOKEN = "metrics-token-0123456789"

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    # Through a proxy on this machine every client would look local: that does not count.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9",
                      HTTP_AUTHORIZATION="Bearer metrics-token-0123456789").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    settings.METRICS_ALLOWED_CIDRS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.2.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_the_shipped_nginx_configuration_marks_proxied_requests_so_metrics_stay_private(client):
    """gunicorn sees every request through nginx as coming from loopback; the forwarded header tells them apart."""
    conf = (Path(__file__).resolve().parents[3] / "deploy" / "nginx.conf").read_text()

    assert re.search(r"proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;", conf)
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 403


def test_metrics_count_what_an_operator_watches(client, user):
    draft = demo_draft(user)  # two uploaded files and a reserved (pending) DOI
    DoiOutbox.objects.create(doi="10.5072/nba.refused-1", kind="version", needs_attention=True, generation=2)
    run = ExecutionRun.objects.create(version=draft, runner="local", notebook_path="thermal.ipynb",
                                      status="finished", verdict="reproduced")
    ExecutionRun.objects.create(version=draft, runner="local", notebook_path="thermal.ipynb")
    backup = BackupRun.objects.create(status="succeeded", target="/backup")
    BackupRun.objects.filter(pk=backup.pk).update(finished_at=timezone.now() - timedelta(hours=2))
    FixityCheck.objects.create(blob=Blob.objects.first(), checked_at=timezone.now(), primary_ok=True,
                               backup_ok=False)
    assert client.get("/").status_code == 200

    samples = _samples(client.get("/metrics"))

    assert samples[("nbarchive_runs", ("status", "finished"), ("verdict", run.verdict))] == 1
    assert samples[("nbarchive_runs", ("status", "queued"), ("verdict", "none"))] == 1
    assert samples[("nbarchive_doi_outbox_pending",)] == 1
    assert samples[("nbarchive_doi_outbox_needs_attention",)] == 1
    assert samples[("nbarchive_uploaded_bytes",)] == sum(Blob.objects.values_list("size", flat=True)) > 0
    assert 7190 < samples[("nbarchive_backup_age_seconds",)] < 7300
    assert samples[("nbarchive_fixity_failures",)] == 1
    assert samples[("nbarchive_celery_queue_messages", ("queue", "verification"))] == 0
    # Latency by view name, never by path.
    assert samples[("nbarchive_http_request_duration_seconds_count", ("method", "GET"), ("status", "2xx"),
                    ("view", "repository:home"))] >= 1
    assert not any("/" in value for key in samples for _, value in key[1:])


def test_queue_depths_come_from_the_broker(client, settings):
    if not redis_reachable():
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
    from repository.celery import app

    # Queues of this test's own: the Redis server may be shared with other test runs.
    busy, idle = f"verification-{uuid.uuid4().hex[:8]}", f"celery-{uuid.uuid4().hex[:8]}"
    settings.WORKER_QUEUES = [idle, busy]
    previous = app.conf.broker_url
    _forget_broker_connections(app)
    app.conf.broker_url = "redis://127.0.0.1:6379/14"
    try:
        for _ in range(3):
            app.send_task("repository.tasks.run_verification_task", args=[0], queue=busy)

        samples = _samples(client.get("/metrics"))

        assert samples[("nbarchive_celery_queue_messages", ("queue", busy))] == 3
        assert samples[("nbarchive_celery_queue_messages", ("queue", idle))] == 0
        assert samples[("nbarchive_scrape_errors", ("part", "queues"))] == 0
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(busy)
        _forget_broker_connections(app)
        app.conf.broker_url = previous
