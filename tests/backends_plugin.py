"""A pytest plugin that chooses the backends the suite runs against, database and S3, before Django reads settings.

- Database: PostgreSQL at 127.0.0.1:5432 (database `test`) when it answers, else SQLite; DATABASE_URL set by
  the caller wins, and NBARCHIVE_TEST_DB=sqlite forces SQLite.
- S3: moto's server mode on a free loopback port, started once per run by the `s3_endpoint` fixture. Tests that
  need it are skipped, with the reason printed, when moto's server cannot start.
The header of every run says which were used.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _choose_database() -> str:
    if os.environ.get("DATABASE_URL"):
        return "DATABASE_URL from the environment"
    if os.environ.get("NBARCHIVE_TEST_DB") == "sqlite":
        return "SQLite (NBARCHIVE_TEST_DB=sqlite)"
    if _port_open("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = POSTGRES_URL
        return f"PostgreSQL ({POSTGRES_URL})"
    return "SQLite (PostgreSQL at 127.0.0.1:5432 is not reachable; PostgreSQL-only tests are skipped)"


DATABASE_CHOICE = _choose_database()
# Two runs at once (two developers, or CI beside a developer) must not share, and drop, one test database.
os.environ.setdefault("NBARCHIVE_TEST_DATABASE_NAME", f"test_nbarchive_{os.getpid()}")
# A connection per request, as before persistent connections became the PostgreSQL default: a connection kept by a
# thread of a test's Celery worker would outlive the test and hold the test database open. The tests of persistent
# connections (tests/repository/test_database_connections.py) start their servers with the production default.
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")
# Keep the test run's files (SQLite file, local storage, broker spool) out of the developer's var/.
os.environ.setdefault("NBARCHIVE_VAR_DIR", tempfile.mkdtemp(prefix="nbarchive-test-"))
os.environ.setdefault("DJANGO_DEBUG", "1")
# The suite's versions pin placeholder images (registry.example.org/...@sha256:...) that no registry serves, so
# runs use the local runner whatever the machine's default (image where skopeo and umoci are installed) or the
# caller's RUNNER; the image runner's tests build their own ImageRunner or override settings.RUNNER.
os.environ["RUNNER"] = os.environ.get("NBARCHIVE_TEST_RUNNER", "local")


def pytest_report_header(config):
    return [f"nbarchive database: {DATABASE_CHOICE}", f"nbarchive runner: {os.environ['RUNNER']}",
            f"nbarchive var dir: {os.environ['NBARCHIVE_VAR_DIR']}"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _moto_server(command: list[str]):
    """Start moto's S3 server (`command` after the interpreter) on a free loopback port; yield its URL."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"moto[server] is not installed, so there is no S3 endpoint: {exc}")
    port = _free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, *command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while not _port_open("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.seek(0)
            pytest.skip(f"moto's S3 server did not start: {log.read()[-500:].decode(errors='replace')}")
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture(scope="session")
def s3_endpoint():
    """URL of a moto S3 server on loopback, running for the whole test session."""
    yield from _moto_server(["-m", "moto.server"])


@pytest.fixture(scope="session")
def s3_checking_endpoint():
    """Like s3_endpoint, with the check of part checksums that real S3 makes and moto leaves out
    (tests/fakes/moto_checksums.py): what direct uploads to presigned part URLs need."""
    yield from _moto_server([os.path.join(os.path.dirname(__file__), "fakes", "moto_checksums.py")])
