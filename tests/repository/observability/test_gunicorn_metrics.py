"""Under gunicorn with several workers, /metrics sums the request metrics of all of them (PROMETHEUS_MULTIPROC_DIR,
deploy/gunicorn.conf.py), whichever worker answers the scrape."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except OSError:
        return None


@pytest.mark.skipif(shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None,
                    reason="gunicorn is not installed beside this Python")
def test_a_scrape_counts_the_requests_of_every_gunicorn_worker(tmp_path):
    port = _free_port()
    metrics_dir = tmp_path / "metrics"
    (metrics_dir / "stale").mkdir(parents=True)  # left by an earlier start: emptied at start
    environment = {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, "NBARCHIVE_VAR_DIR": str(tmp_path),
                   "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "DJANGO_DEBUG": "1", "LOG_FORMAT": "json"}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--bind",
         f"127.0.0.1:{port}", "--workers", "2", "repository.wsgi:application"],
        cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _get(f"http://127.0.0.1:{port}/health/live") is None:
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        before = _live_count(_get(f"http://127.0.0.1:{port}/metrics").decode())
        for _ in range(20):
            assert _get(f"http://127.0.0.1:{port}/health/live") is not None
        after = _live_count(_get(f"http://127.0.0.1:{port}/metrics").decode())
    finally:
        server.terminate()
        server.wait(timeout=30)

    assert after - before == 20
    assert not (metrics_dir / "stale").exists()


def _live_count(exposition: str) -> float:
    return next(sample.value for family in text_string_to_metric_families(exposition) for sample in family.samples
                if sample.name == "nbarchive_http_request_duration_seconds_count"
                and sample.labels == {"method": "GET", "status": "2xx", "view": "health_live"})
