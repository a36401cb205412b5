"""Static files as production serves them: collected with DEBUG off (hashed names and a manifest), looked up by
every page through the manifest storage. Collected with DEBUG on, as deploy/Dockerfile once did, the manifest is
missing and every HTML page answers 500 ("Missing staticfiles manifest entry")."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"


def _dockerfile_collectstatic_environment() -> dict[str, str]:
    """The environment deploy/Dockerfile runs collectstatic with: its ENV lines before that step, and the
    assignments on the command itself."""
    text = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    environment = {}
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "ENV":
            environment.update(part.split("=", 1) for part in shlex.split(rest))
        elif instruction == "RUN" and "collectstatic" in rest:
            command = rest.split("&&")[[("collectstatic" in part) for part in rest.split("&&")].index(True)]
            environment.update(word.split("=", 1) for word in shlex.split(command)
                               if re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", word))
            return environment
    raise AssertionError("deploy/Dockerfile has no collectstatic step")


@pytest.fixture
def collected(tmp_path):
    """collectstatic run as the image's build runs it, into a temporary STATIC_ROOT."""
    static_root = tmp_path / "static"
    base = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "DJANGO_DEBUG")}
    environment = {**base, **_dockerfile_collectstatic_environment(), "STATIC_ROOT": str(static_root),
                   "NBARCHIVE_VAR_DIR": str(tmp_path / "var")}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"], cwd=ROOT,
                   env=environment, check=True, capture_output=True)
    return static_root


@pytest.mark.django_db
def test_the_image_collects_static_files_that_pages_with_debug_off_find(collected, settings, client):
    assert (collected / "staticfiles.json").is_file()
    settings.DEBUG = False
    settings.STATIC_ROOT = collected
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": MANIFEST_STORAGE}}

    for path in ("/", "/accounts/login/"):
        response = client.get(path)
        assert response.status_code == 200, path
        # The page names the hashed file, which far-future caching needs.
        assert re.search(r"/static/repository/style\.[0-9a-f]{12}\.css", response.content.decode()), path


def test_the_systemd_web_unit_collects_static_files_before_gunicorn_starts():
    unit = (ROOT / "deploy" / "systemd" / "nbarchive-web.service").read_text()
    collect = unit.find("manage.py collectstatic --no-input")
    assert 0 < collect < unit.find("ExecStart=")
    assert unit[:collect].rsplit("\n", 1)[1].startswith("ExecStartPre=")
