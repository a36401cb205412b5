"""The start-up check says in one line each what the bubblewrap sandbox lacks on a verification worker: without
it every run would end `error`, so the operator hears it at start, not from the first submission."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
KERNEL_PYTHON = Path(settings.RUNNER_KERNEL_PYTHON)

if shutil.which("bwrap") is None:
    pytest.skip("bubblewrap (bwrap) is not installed: the sandbox checks stay quiet without it (W034 says so)",
                allow_module_level=True)

# The start-up check inside a user namespace whose limit on further user namespaces is 0: bwrap is refused there as
# on a machine that does not allow unprivileged user namespaces (the limit outlives the exec of manage.py).
WITHOUT_USER_NAMESPACES = r'''
import ctypes, os, sys
from pathlib import Path

outside_uid, outside_gid = os.getuid(), os.getgid()
if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:  # CLONE_NEWUSER
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
for name, text in (("setgroups", "deny"), ("uid_map", f"54321 {outside_uid} 1"), ("gid_map", f"54321 {outside_gid} 1")):
    Path(f"/proc/self/{name}").write_text(text)
Path("/proc/sys/user/max_user_namespaces").write_text("0")
os.execv(sys.executable, [sys.executable, "manage.py", "check", "--deploy"])
'''


def check(tmp_path, *command, **env) -> dict[str, str]:
    """`check --deploy` in development (DEBUG on) runs the checks a production start runs; the W04x lines."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("IMAGE_")}
    environment.update(NBARCHIVE_VAR_DIR=str(tmp_path), DJANGO_DEBUG="1", RUNNER="local", **env)
    result = subprocess.run(list(command or [sys.executable, "manage.py", "check", "--deploy"]), check=False,
                            cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return dict(re.findall(r"\((nbarchive\.W04\d)\) (.*)", result.stderr))


def test_the_check_is_quiet_when_the_sandbox_has_what_it_needs(tmp_path):
    if not KERNEL_PYTHON.exists():
        pytest.skip(f"no kernel environment at {KERNEL_PYTHON}")

    assert check(tmp_path) == {}


def test_a_missing_kernel_environment_is_one_line(tmp_path):
    lines = check(tmp_path, RUNNER_KERNEL_PYTHON=str(tmp_path / "nowhere" / "bin" / "python"))

    assert "RUNNER_KERNEL_PYTHON" in lines["nbarchive.W041"] and "does not exist" in lines["nbarchive.W041"]


def test_folders_the_sandbox_uid_cannot_search_are_one_line_each(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only a root worker runs the sandbox as another uid")
    if not KERNEL_PYTHON.exists():
        pytest.skip(f"no kernel environment at {KERNEL_PYTHON}")
    private = Path(tempfile.mkdtemp(prefix="nbarchive-test-0700-"))  # 0700, as the home folder a new user used
    try:
        (private / "kernel-env").symlink_to(KERNEL_PYTHON.parent.parent)
        (private / "tmp").mkdir()
        lines = check(tmp_path, RUNNER_KERNEL_PYTHON=str(private / "kernel-env" / "bin" / KERNEL_PYTHON.name),
                      TMPDIR=str(private / "tmp"))
    finally:
        shutil.rmtree(private)

    assert f"is below {private}, which the sandbox uid cannot search" in lines["nbarchive.W042"]
    assert f"The temporary folder {private / 'tmp'} is below {private}" in lines["nbarchive.W043"]


def test_user_namespaces_refused_to_the_worker_are_one_line(tmp_path):
    lines = check(tmp_path, sys.executable, "-c", WITHOUT_USER_NAMESPACES)

    assert "bwrap cannot make a sandbox here (bwrap: Creating new namespace failed" in lines["nbarchive.W044"]
