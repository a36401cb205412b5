"""manage.py images: list, pre-pull and prune the worker's image cache; and the start-up check of its tools."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

pytestmark = [pytest.mark.images, pytest.mark.sandbox]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def image_settings(settings, image_cache_factory, image_registry):
    cache = image_cache_factory()
    settings.IMAGE_CACHE_DIR = str(cache.root)
    settings.IMAGE_INSECURE_REGISTRIES = [image_registry.host]
    return cache


def images(*args) -> str:
    out = StringIO()
    call_command("images", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_pull_list_and_prune(image_settings, tiny_image_ref):
    ref = tiny_image_ref("command", {"/etc/command": b"x"})

    pulled = images("pull", ref)
    listed = images("list")
    pruned = images("prune", "--all")

    assert f"{ref}: " in pulled and "unsupported image: no python with ipykernel found" in pulled
    assert ref.split("@")[1] in listed and "1 image(s)" in listed
    assert f"evicted {ref}" in pruned and "0 left" in pruned
    assert "0 image(s)" in images("list")


def test_pull_refuses_a_tag_and_says_why(image_settings):
    with pytest.raises(CommandError, match="invalid_image_reference: .* is not pinned by digest"):
        images("pull", "127.0.0.1:5000/x/y:latest")


def test_pull_of_a_missing_image_names_the_failure(image_settings, image_registry):
    with pytest.raises(CommandError, match="image_not_found"):
        images("pull", f"{image_registry.host}/x/y@sha256:{'2' * 64}")


def _check(tmp_path, **env) -> subprocess.CompletedProcess:
    """`check --deploy` in development (DEBUG on) runs the checks a production start runs."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE_")}
    environment.update(NBARCHIVE_VAR_DIR=str(tmp_path), DJANGO_DEBUG="1", **env)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy"], check=False, cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)


def test_the_start_up_check_says_in_one_line_each_what_the_image_runner_lacks(tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()

    result = _check(tmp_path, PATH=str(empty_path), IMAGE_CACHE_DIR="/etc/hostname/cache",
                    IMAGE_REGISTRY_AUTH_FILE=str(tmp_path / "missing.json"))

    lines = dict(re.findall(r"\((nbarchive\.W03\d)\) (.*)", result.stderr))
    assert "skopeo and umoci not on PATH" in lines["nbarchive.W030"]
    assert "IMAGE_CACHE_DIR /etc/hostname/cache is not writable" in lines["nbarchive.W031"]
    assert "missing.json does not exist" in lines["nbarchive.W033"]


def test_the_start_up_check_is_quiet_when_the_image_runner_has_what_it_needs(tmp_path):
    reachable = Path(tempfile.mkdtemp(prefix="nbarchive-check-"))
    reachable.chmod(0o755)
    try:
        result = _check(tmp_path, IMAGE_CACHE_DIR=str(reachable / "cache"))
    finally:
        shutil.rmtree(reachable)

    assert "nbarchive.W03" not in result.stderr, result.stderr


def test_a_development_start_stays_quiet_about_the_image_runner(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE_")}
    environment.update(NBARCHIVE_VAR_DIR=str(tmp_path), DJANGO_DEBUG="1", PATH=str(tmp_path))

    result = subprocess.run([sys.executable, "manage.py", "check"], check=False, cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0 and "nbarchive.W03" not in result.stderr, result.stderr


def test_a_cache_below_a_folder_the_sandbox_uid_cannot_search_is_reported(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only a root worker runs the sandbox as another uid")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)

    result = _check(tmp_path, IMAGE_CACHE_DIR=str(private / "cache"))

    assert "(nbarchive.W032)" in result.stderr and "chmod o+x" in result.stderr
