"""`make run ADDRESS=host:port`: the site's absolute links follow the address the server listens on."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from repository.settings._env import site_url_for_address

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("address", "url"), [
    ("127.0.0.1:8101", "http://127.0.0.1:8101"),
    ("8101", "http://127.0.0.1:8101"),
    ("0.0.0.0:8101", "http://127.0.0.1:8101"),
    ("[::1]:8101", "http://[::1]:8101"),
    ("archive.example.org:80", "http://archive.example.org:80"),
])
def test_site_url_for_an_address(address, url):
    assert site_url_for_address(address) == url


def _site_url(tmp_path, **environment) -> str:
    base = {key: value for key, value in os.environ.items() if key not in ("SITE_URL", "NBARCHIVE_ADDRESS")}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                               "print(settings.SITE_URL)"],
        cwd=ROOT, env={**base, "DJANGO_SETTINGS_MODULE": "repository.settings", "NBARCHIVE_VAR_DIR": str(tmp_path),
                       **environment}, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_site_url_follows_the_address_unless_set_explicitly(tmp_path):
    assert _site_url(tmp_path) == "http://127.0.0.1:8000"
    assert _site_url(tmp_path, NBARCHIVE_ADDRESS="127.0.0.1:8101") == "http://127.0.0.1:8101"
    assert _site_url(tmp_path, NBARCHIVE_ADDRESS="127.0.0.1:8101",
                     SITE_URL="https://archive.example.org/") == "https://archive.example.org"


def test_make_run_gives_its_address_to_every_command_it_runs(tmp_path):
    """The demo prints links and the DOI sync registers targets before the server starts: each must see ADDRESS.
    A stand-in python records what each command was given (install is taken as done)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$NBARCHIVE_ADDRESS $*" >> {calls}\n')
    fake.chmod(0o755)

    subprocess.run(["make", "--no-print-directory", "-o", "install", "run", "ADDRESS=127.0.0.1:8101",
                    f"BIN={bin_dir}"], cwd=ROOT, check=True, capture_output=True)

    lines = calls.read_text().splitlines()
    assert [line.split()[2] for line in lines] == ["migrate", "demo", "doi_sync", "serve"]
    assert all(line.startswith("127.0.0.1:8101 ") for line in lines), lines
    assert "doi_sync --all" in lines[2] and lines[3].endswith("serve 127.0.0.1:8101")
