"""`manage.py serve` (what `make run` starts) as an operator runs it: a real process on a free port.

It must stop everything it started when it is told to stop, or a restart runs a second worker and beat beside the
first; and the links it writes must carry the address it listens on.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_mentioning(marker: str) -> dict[int, str]:
    """Live processes whose command line contains `marker` (our temporary folder): the worker and its beat
    name the schedule file inside it."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in command and state != "Z":
            found[int(entry.name)] = command
    return found


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see the worker's processes")
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_writes_links_for_its_address_and_stops_its_worker_and_beat(tmp_path, stop_signal):
    port = _free_port()
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("SITE_URL", "NBARCHIVE_ADDRESS", "DATABASE_URL", "CELERY_BROKER_URL")}
    environment.update(NBARCHIVE_VAR_DIR=str(tmp_path), DJANGO_DEBUG="1", PYTHONUNBUFFERED="1")
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"], cwd=ROOT,
                              env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        robots = _wait_for(lambda: _get(f"http://127.0.0.1:{port}/robots.txt"), 60, "the server to answer")
        # A link written by the server (robots.txt names the sitemap by its absolute URL) has the port it listens on.
        assert f"Sitemap: http://127.0.0.1:{port}/sitemap.xml" in robots
        # The worker, its pool process and the embedded beat are up.
        started = _wait_for(lambda: (lambda p: p if len(p) >= 2 else None)(_processes_mentioning(str(tmp_path))),
                            60, "the Celery worker and its children")

        server.send_signal(stop_signal)
        server.wait(timeout=40)

        left = _wait_for(lambda: not _processes_mentioning(str(tmp_path)) or None, 30,
                         f"the worker's processes to end: {_processes_mentioning(str(tmp_path))}")
        assert left and started
    finally:
        if server.poll() is None:
            server.kill()
        for pid in _processes_mentioning(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)
        log.close()
