"""Production keeps PostgreSQL connections across requests and checks them before reuse (issue 19: 124 -> 300 API
requests/s), while SQLite keeps one per request."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"


def _production_environment(**overrides) -> dict:
    """This process's environment without what the test suite sets to keep one connection per request."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in {"DATABASE_URL", "DATABASE_CONN_MAX_AGE", "NBARCHIVE_TEST_DATABASE_NAME"}}
    return {**environment, **overrides}


def _database_settings(**environment) -> dict:
    code = ("import json; from django.conf import settings; d = settings.DATABASES['default']; print(json.dumps("
            "{'max_age': d.get('CONN_MAX_AGE', 0), 'health_checks': d.get('CONN_HEALTH_CHECKS', False)}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                            env=_production_environment(DJANGO_SETTINGS_MODULE="repository.settings", **environment))
    return json.loads(result.stdout)


def test_postgresql_connections_are_kept_and_checked_by_default():
    assert _database_settings(DATABASE_URL="postgres://nbarchive:password@127.0.0.1:5432/nbarchive") == {
        "max_age": 600, "health_checks": True}


def test_sqlite_keeps_a_connection_per_request_and_the_url_or_variable_may_choose(tmp_path):
    assert _database_settings(NBARCHIVE_VAR_DIR=str(tmp_path))["max_age"] == 0
    assert _database_settings(DATABASE_URL="postgres://u@127.0.0.1/n", DATABASE_CONN_MAX_AGE="60")["max_age"] == 60
    assert _database_settings(DATABASE_URL="postgres://u@127.0.0.1/n?conn_max_age=0",
                              DATABASE_CONN_MAX_AGE="60")["max_age"] == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _server_connections(database: str) -> set[int]:
    """Backend pids of the sessions on `database` other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database])
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(shutil.which("gunicorn", path=str(GUNICORN.parent)) is None,
                    reason="gunicorn is not installed beside this Python")
def test_the_web_pool_reuses_its_database_connection_and_replaces_a_lost_one(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("persistent connections are the PostgreSQL default")
    database = connection.settings_dict
    url = (f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST'] or '127.0.0.1'}:"
           f"{database['PORT'] or 5432}/{database['NAME']}")
    port = _free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    server = subprocess.Popen(
        [str(GUNICORN), "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--threads", "1", "repository.wsgi:application"],
        cwd=ROOT, stdout=log, stderr=log,
        env=_production_environment(DATABASE_URL=url, NBARCHIVE_VAR_DIR=str(tmp_path), DJANGO_DEBUG="1"))
    records = f"http://127.0.0.1:{port}/api/records"
    try:
        deadline = time.monotonic() + 60
        while _status(f"http://127.0.0.1:{port}/health/live") is None:
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)

        assert _status(records) == 200
        after_first = _server_connections(database["NAME"])
        assert _status(records) == 200
        assert len(after_first) == 1
        assert _server_connections(database["NAME"]) == after_first  # the same session served both

        # The database drops the session (a restart, a failover): the next request reconnects instead of a 503.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [next(iter(after_first))])
        assert _status(records) == 200
        assert _server_connections(database["NAME"]) - after_first
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
