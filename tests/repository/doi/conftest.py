"""Fixtures for DOI tests: a fake DataCite on loopback and a real `datacite` client pointed at it."""

import pytest
from datacite import DataCiteRESTClient

from tests.fakes.datacite import FakeDataCite

DATACITE_USERNAME = "NBARCHIVE.TEST"
DATACITE_PASSWORD = "test-password"
DATACITE_PREFIX = "10.80000"
CLIENT_TIMEOUT = 5  # seconds: a test that forgets a hang fails quickly instead of stalling the run


@pytest.fixture
def datacite_server():
    """A fresh fake DataCite per test, owning DATACITE_PREFIX, on 127.0.0.1 with a free port."""
    server = FakeDataCite(username=DATACITE_USERNAME, password=DATACITE_PASSWORD, prefixes=(DATACITE_PREFIX,))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def datacite_client(datacite_server):
    """The real client, talking to the fake: test_mode=False, or it would ignore `url` and call DataCite's test API."""
    return DataCiteRESTClient(
        username=DATACITE_USERNAME,
        password=DATACITE_PASSWORD,
        prefix=DATACITE_PREFIX,
        test_mode=False,
        url=datacite_server.url,
        timeout=CLIENT_TIMEOUT,
    )
