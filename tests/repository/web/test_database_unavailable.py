"""The database refusing connections or busy: 503 with Retry-After, in each client's language, never a 500.

The outage is real: the connection is pointed at a port nothing listens on (PostgreSQL) or at a file that cannot
be opened (SQLite), or another process holds SQLite's write lock. Nothing in Django is mocked.
"""

import socket
import sqlite3
import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.db.utils import ConnectionHandler
from django.test import Client
from rest_framework.test import APIClient

from repository import settings as project_settings

RETRY_AFTER = "7"


@pytest.fixture
def retry_after(settings):
    settings.DATABASE_RETRY_AFTER = int(RETRY_AFTER)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free once the socket closes: nothing listens there


@pytest.fixture
def database_down(transactional_db, tmp_path, retry_after):
    """From here on, every new connection to the default database fails as an unreachable server does."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = str(tmp_path / "no-such-folder" / "db.sqlite3")
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    yield
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


def _assert_503(response, content_type: str):
    assert response.status_code == 503, response.content[:500]
    assert response["Retry-After"] == RETRY_AFTER
    assert response["Content-Type"].startswith(content_type)


@pytest.fixture
def account(db):
    """(a user, their API token), made while the database still answers."""
    from repository.services.tokens import token_create
    from tests.factories import UserFactory

    user = UserFactory()
    _, raw = token_create(user=user, name="outage")
    return user, raw


@pytest.fixture
def token(account):
    return account[1]


@pytest.fixture
def signed_in(account):
    client = Client()
    client.force_login(account[0])
    return client


@pytest.mark.parametrize("debug", [False, True])
def test_with_the_database_down_every_kind_of_client_gets_a_503_with_retry_after(token, signed_in, database_down,
                                                                                 client, settings, debug):
    settings.DEBUG = debug
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    page = signed_in.get("/")  # the page asks the database who is signed in
    _assert_503(page, "text/html")
    assert "Temporarily unavailable" in page.content.decode()
    assert "Traceback" not in page.content.decode()

    _assert_503(client.get("/records/abcde-12345/"), "text/html")
    anonymous = APIClient().get("/api/records/abcde-12345")
    _assert_503(anonymous, "application/problem+json")
    assert anonymous.json()["code"] == "database_unavailable"
    _assert_503(api.get("/api/user/records"), "application/problem+json")
    _assert_503(api.post("/api/records", {"title": "During the outage"}, format="json"), "application/problem+json")

    for oai in (client.get("/oai?verb=Identify"),
                client.post("/oai", "verb=ListRecords&metadataPrefix=oai_dc",
                            content_type="application/x-www-form-urlencoded")):
        _assert_503(oai, "text/plain")
        assert b"<html" not in oai.content and b"database" in oai.content


def test_the_503_page_renders_even_before_collectstatic(signed_in, database_down, settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "never-collected"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}

    _assert_503(signed_in.get("/uploads/"), "text/html")  # who is signed in is asked first


@pytest.mark.skipif(project_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3",
                    reason="SQLite's write lock")
def test_a_write_that_waits_past_sqlites_busy_timeout_is_a_503(transactional_db, retry_after, token):
    connection.close()
    options = connection.settings_dict["OPTIONS"]
    saved_timeout = options["timeout"]
    options["timeout"] = 0.2
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")  # another process writing, for longer than our busy timeout
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

        response = api.post("/api/records", {"title": "Blocked"}, format="json")

        _assert_503(response, "application/problem+json")
    finally:
        holder.rollback() if holder.in_transaction else None
        holder.close()
        options["timeout"] = saved_timeout
        connection.close()


# --- SQLite under concurrent writers ---------------------------------------------------------------------------

WRITERS = 8
TRANSACTIONS_PER_WRITER = 15


@pytest.fixture
def sqlite_file_alias(tmp_path, django_db_blocker):
    """A connection alias to a new SQLite file, configured exactly as the embedded default (SQLITE_OPTIONS).
    Not the test database: the writers need their own connections, committing for real."""
    django_db_blocker.unblock()
    alias = "concurrent_sqlite"
    configured = ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3",
                                                "NAME": str(tmp_path / "concurrent.sqlite3"),
                                                "OPTIONS": dict(project_settings.SQLITE_OPTIONS)}})
    connections.settings[alias] = configured.settings["default"]
    with connections[alias].cursor() as cursor:
        cursor.execute("CREATE TABLE deposit (id INTEGER PRIMARY KEY, writer INTEGER, seen INTEGER)")
    connections[alias].close()
    yield alias
    connections[alias].close()
    del connections.settings[alias]
    django_db_blocker.restore()


def test_concurrent_writers_on_the_sqlite_default_all_succeed(sqlite_file_alias):
    """Each writer reads and then writes inside one transaction, as the services do (check state, then save). With
    deferred transactions two readers deadlock when both want to write and SQLite fails one at once with
    "database is locked", whatever the busy timeout; IMMEDIATE transactions queue instead."""
    errors, start = [], threading.Barrier(WRITERS)

    def writer(number: int):
        try:
            start.wait()
            for _ in range(TRANSACTIONS_PER_WRITER):
                with transaction.atomic(using=sqlite_file_alias):
                    with connections[sqlite_file_alias].cursor() as cursor:
                        cursor.execute("SELECT count(*) FROM deposit")
                        seen = cursor.fetchone()[0]
                        time.sleep(0.002)  # others read meanwhile
                        cursor.execute("INSERT INTO deposit (writer, seen) VALUES (%s, %s)", [number, seen])
        except Exception as exc:  # noqa: BLE001 - every failure is reported by the assertion below
            errors.append(repr(exc))
        finally:
            connections[sqlite_file_alias].close()

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    with connections[sqlite_file_alias].cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT seen) FROM deposit")
        rows, distinct_seen = cursor.fetchone()
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
    assert rows == WRITERS * TRANSACTIONS_PER_WRITER
    assert distinct_seen == rows  # serialised: every transaction saw all the ones before it
    assert journal_mode == "wal"


def test_concurrent_api_writes_to_a_live_server_all_succeed(live_server, transactional_db):
    """Many clients creating drafts at once through a live (threaded) server: each gets its 201, none a 500 or a
    503, on SQLite as on PostgreSQL."""
    import requests

    from repository.models import Record
    from repository.services.tokens import token_create
    from tests.factories import UserFactory

    tokens = [token_create(user=UserFactory(), name="concurrent")[1] for _ in range(WRITERS)]
    statuses, start = [], threading.Barrier(WRITERS)

    def client(token: str):
        start.wait()
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {token}"
            for number in range(3):
                created = session.post(f"{live_server.url}/api/records", json={"title": f"Concurrent {number}"},
                                       timeout=60)
                statuses.append(created.status_code)
                if created.status_code == 201:
                    # A PUT reads the draft, then replaces its rows: the read-then-write of every service.
                    edited = session.put(created.json()["links"]["self"], timeout=60, json={
                        "title": "Edited", "keywords": ["a", "b"], "creators": [{"name": "Doe, Jane"}]})
                    statuses.append(edited.status_code)

    threads = [threading.Thread(target=client, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(statuses) == [200] * (WRITERS * 3) + [201] * (WRITERS * 3)
    assert Record.objects.count() == WRITERS * 3
