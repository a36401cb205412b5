"""Safe defaults of a checkout started as the README says: a secret key of its own, loopback only with DEBUG on.

Run as an operator would, in fresh processes with the environment under test.
"""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from repository.management.listen_address import refuse_public_address_in_debug

ROOT = Path(__file__).resolve().parents[2]
FORMER_CONSTANT_KEY = "insecure-development-key-change-me"


def manage(var_dir, *args, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DJANGO_DEBUG")}
    environment.update(NBARCHIVE_VAR_DIR=str(var_dir), **env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


def secret_key_of(var_dir, **env) -> str:
    result = manage(var_dir, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]  # after the shell's "objects imported" line


def test_without_a_secret_key_each_checkout_generates_its_own_and_keeps_it(tmp_path):
    first = secret_key_of(tmp_path / "one")

    key_file = tmp_path / "one" / "secret_key"
    assert first != FORMER_CONSTANT_KEY and len(first) >= 50
    assert key_file.read_text().strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret_key_of(tmp_path / "one") == first  # sessions and signed links survive a restart
    assert secret_key_of(tmp_path / "two") != first  # and no two checkouts share one


def test_a_given_secret_key_is_used_and_nothing_is_written(tmp_path):
    assert secret_key_of(tmp_path, SECRET_KEY="g" * 50) == "g" * 50
    assert not (tmp_path / "secret_key").exists()


def test_serve_refuses_an_address_others_can_reach_while_debug_is_on(tmp_path):
    result = manage(tmp_path, "serve", "0.0.0.0:8000")

    assert result.returncode != 0
    assert "Refusing to listen on 0.0.0.0:8000 with DEBUG on" in result.stderr
    assert "celery" not in (result.stdout + result.stderr).lower()  # refused before the worker was started


@pytest.mark.parametrize("address", ["0.0.0.0:8000", "[::]:8000", "192.0.2.7:8000", "example.org:80",
                                     "[::ffff:0.0.0.0]:8000"])
def test_addresses_reachable_from_elsewhere_are_refused_with_debug_on(address):
    with pytest.raises(CommandError, match="DEBUG on"):
        refuse_public_address_in_debug(address, debug=True)
    refuse_public_address_in_debug(address, debug=False)


@pytest.mark.parametrize("address", ["8000", "127.0.0.1:8000", "127.0.0.2:9000", "localhost:8000", "[::1]:8000",
                                     "[::ffff:127.0.0.1]:8000"])
def test_loopback_addresses_are_accepted_with_debug_on(address):
    refuse_public_address_in_debug(address, debug=True)


def test_a_var_dir_that_cannot_hold_the_key_gives_a_key_for_this_process_only(tmp_path):
    from repository.settings.secret_key import secret_key_kept_in

    not_a_folder = tmp_path / "var"
    not_a_folder.write_text("a file where the folder should be")

    first, second = secret_key_kept_in(not_a_folder), secret_key_kept_in(not_a_folder)

    assert len(first) >= 50 and first != second and first != FORMER_CONSTANT_KEY


def test_without_cache_url_the_cache_is_shared_by_the_processes_of_the_checkout(tmp_path, monkeypatch):
    # The moderators' notebook diff is computed by a worker and read by the web: a per-process cache (LocMem)
    # would leave the request page saying "being prepared" for ever.
    monkeypatch.delenv("CACHE_URL", raising=False)
    worker = manage(tmp_path, "shell", "-c", "from django.core.cache import cache; cache.set('diff', 'worker')")
    assert worker.returncode == 0, worker.stderr

    web = manage(tmp_path, "shell", "-c", "from django.core.cache import cache; print(cache.get('diff'))")

    assert web.returncode == 0, web.stderr
    assert web.stdout.strip().splitlines()[-1] == "worker"
