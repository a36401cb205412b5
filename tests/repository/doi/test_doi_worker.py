"""The DOI sync for real: tasks sent over Redis after commit to a Celery worker, DataCite (the loopback fake)
failing for a while, and every version ending published with one DOI each."""

import time

import pytest

from repository.models import DoiOutbox, Version
from tests.celery_worker import celery_worker_on_redis
from tests.factories import UserFactory, accept, demo_draft
from tests.repository.doi.conftest import DATACITE_PASSWORD, DATACITE_PREFIX, DATACITE_USERNAME

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def doi_worker(settings, datacite_server):
    settings.DOI_PROVIDER, settings.DOI_PREFIX = "datacite", DATACITE_PREFIX
    settings.DATACITE_API_URL, settings.DATACITE_TEST_MODE = datacite_server.url, False
    settings.DATACITE_USERNAME, settings.DATACITE_PASSWORD = DATACITE_USERNAME, DATACITE_PASSWORD
    settings.DATACITE_TIMEOUT = 1.0
    settings.DOI_SYNC_RETRY_BASE, settings.DOI_SYNC_RETRY_MAX = 0.2, 1.0  # the backoff, compressed
    # Only the DOI queue: the syncs must be routed there, apart from the file moves on `celery`.
    with celery_worker_on_redis(queues=["dois"], redis_db=14):
        yield datacite_server


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
