"""The DOI sync for real: tasks sent over Redis after commit to a Celery worker, DataCite (the loopback fake)
failing for a while, and every version ending published with one DOI each."""

import time

import pytest
from django.db import connection

from repository.models import DoiOutbox, Version
from tests.factories import UserFactory
from tests.publishing import accept
from tests.repository.doi.conftest import DATACITE_PASSWORD, DATACITE_PREFIX, DATACITE_USERNAME
from tests.repository.services.test_runs import demo_draft
from tests.repository.test_tasks import _redis_reachable

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def doi_worker(settings, datacite_server):
    if not _redis_reachable():
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable: no real Celery worker for this test")
    if connection.vendor != "postgresql":
        pytest.skip("a worker thread needs a database other connections can see (PostgreSQL)")
    from celery.contrib.testing.worker import start_worker

    from repository.celery import app

    settings.DOI_PROVIDER, settings.DOI_PREFIX = "datacite", DATACITE_PREFIX
    settings.DATACITE_API_URL, settings.DATACITE_TEST_MODE = datacite_server.url, False
    settings.DATACITE_USERNAME, settings.DATACITE_PASSWORD = DATACITE_USERNAME, DATACITE_PASSWORD
    settings.DATACITE_TIMEOUT = 1.0
    settings.DOI_SYNC_RETRY_BASE, settings.DOI_SYNC_RETRY_MAX = 0.2, 1.0  # the backoff, compressed
    previous = (app.conf.broker_url, app.conf.result_backend)
    app.conf.broker_url = "redis://127.0.0.1:6379/14"
    app.conf.result_backend = None
    try:
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=["celery"],
                          loglevel="WARNING", shutdown_timeout=30):
            yield datacite_server
    finally:
        app.conf.broker_url, app.conf.result_backend = previous


def wait_for(predicate, seconds=60):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.2)
    return predicate()


def test_versions_end_published_once_datacite_answers_again(doi_worker):
    author, moderator = UserFactory(), UserFactory()
    doi_worker.fail_next(8, status=503)  # the first syncs all fail; the worker retries with backoff

    versions = [accept(demo_draft(author), moderator) for _ in range(2)]

    assert wait_for(lambda: all(Version.objects.get(pk=v.pk).state == Version.State.PUBLISHED for v in versions)), \
        list(DoiOutbox.objects.values_list("doi", "wanted_state", "registrar_state", "attempts", "last_error"))
    expected = {v.doi for v in versions} | {Version.objects.get(pk=v.pk).record.concept_doi for v in versions}
    assert wait_for(lambda: doi_worker.all_dois() == {doi: "findable" for doi in sorted(expected)})
    for doi in expected:  # created once each, whatever the retries
        assert len([r for r in doi_worker.requests if r.method == "POST" and r.status == 201
                    and r.json()["data"]["attributes"]["doi"] == doi]) == 1
