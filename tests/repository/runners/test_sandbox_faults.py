"""When the sandbox or the collector fails for reasons that are not the notebook's, the run is the operator's
problem (SandboxUnavailable: the task retries it and, after its retries, ends it `error` with the message), never
a verdict about the notebook. And what the notebook's own output does to the collector is the notebook's verdict.

Everything here is real: bwrap refused by the kernel (a user namespace whose limit on further user namespaces is
zero, for a worker that is not root), a kernel environment below a folder the sandbox uid cannot search, a
collector killed from outside while the kernel runs.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest
from django.conf import settings
from nbformat.v4 import new_code_cell, new_notebook

from repository.runners import sandbox
from repository.runners.base import SandboxLimits
from repository.runners.compare import Tolerance
from repository.runners.local import LocalSandboxRunner
from repository.runners.sandbox import SandboxUnavailable
from repository.services.verification import notebook_verify
from tests.processes import command_line, process_descendants
from tests.repository.runners.hostile_notebooks import SMALL_MESSAGE_FLOOD, expanding_output_cell
from tests.sandbox import kernel_python_or_skip_module

pytestmark = pytest.mark.sandbox

KERNEL_PYTHON = kernel_python_or_skip_module()

FAST = SandboxLimits(memory_mb=1024, cpu_seconds=20, max_processes=32, max_file_size_mb=64,
                     cell_timeout_seconds=30, notebook_timeout_seconds=60, max_output_mb=5, tmpfs_mb=32)
RUNNER = LocalSandboxRunner(kernel_python=KERNEL_PYTHON)
UNPRIVILEGED_UID = 54_321  # no account of this machine: the uid of a worker that is not root


@pytest.fixture
def workdir():
    root = Path(tempfile.mkdtemp(prefix="nbarchive-test-faults-"))
    root.chmod(0o755)
    (root / "work").mkdir()
    yield root / "work"
    shutil.rmtree(root, ignore_errors=True)


def write_notebook(workdir: Path, cells) -> None:
    notebook = new_notebook(cells=[new_code_cell(source, execution_count=n) for n, source in enumerate(cells, 1)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, workdir / "nb.ipynb")


def verify(workdir: Path, runner: LocalSandboxRunner, limits: SandboxLimits = FAST):
    return notebook_verify(workdir=workdir, notebook_path="nb.ipynb", runner=runner, tolerance=Tolerance(),
                           limits=limits)


# --- bwrap cannot start ---------------------------------------------------------------------------------------
def test_a_kernel_environment_below_a_folder_the_sandbox_uid_cannot_search_is_the_operators_problem(workdir, caplog):
    """As a new user found it: the app (and with it var/kernel-env) installed under a 0700 folder made every
    notebook `execution_failed`, because bwrap, already running as the sandbox uid, could not reach it."""
    if os.geteuid() != 0:
        pytest.skip("only a root worker runs the sandbox as another uid")
    private = Path(tempfile.mkdtemp(prefix="nbarchive-test-0700-"))  # mkdtemp makes it 0700, as a home folder
    try:
        (private / "kernel-env").symlink_to(KERNEL_PYTHON.parent.parent)
        runner = LocalSandboxRunner(kernel_python=private / "kernel-env" / "bin" / KERNEL_PYTHON.name)
        write_notebook(workdir, ["print(1)"])

        with pytest.raises(SandboxUnavailable) as failed:
            verify(workdir, runner)
    finally:
        shutil.rmtree(private)

    message = str(failed.value)
    assert "The sandbox could not start on this worker (bwrap: " in message
    assert "chmod o+x" in message
    # The run's message is read by the author: the folder as the sandbox names it. The operator's log names it
    # on the host, where it can be fixed.
    assert str(private) not in message
    assert str(private / "kernel-env") in caplog.text
    assert "Nothing is known about the notebook" in message


# A worker that is not root, for real: another process that first enters a user namespace of its own in which it
# is UNPRIVILEGED_UID with no capability over the host (this machine's Python lives in root's 0700 home, which a
# plain setpriv'd uid could not even execute; mapped to root's files as their owner, this one can). The runner then
# takes its non-root path: no setpriv, the sandbox under the worker's own uid, bwrap making user namespaces as an
# ordinary user. With "refuse", the namespace's limit on further user namespaces is 0, so the kernel refuses
# bwrap exactly as on a machine that does not allow unprivileged user namespaces.
NON_ROOT_WORKER = r'''
import ctypes, json, os, sys
from pathlib import Path

workdir, kernel_python, uid, mode = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
outside_uid, outside_gid = os.getuid(), os.getgid()
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER)")
for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {outside_uid} 1"), ("gid_map", f"{uid} {outside_gid} 1")):
    Path(f"/proc/self/{name}").write_text(text)
if mode == "refuse":
    Path("/proc/sys/user/max_user_namespaces").write_text("0")
assert os.geteuid() == uid

from repository.runners.base import RunSpec, SandboxLimits
from repository.runners.local import LocalSandboxRunner
from repository.runners.sandbox import SandboxUnavailable

limits = SandboxLimits(memory_mb=1024, cpu_seconds=20, max_processes=32, cell_timeout_seconds=30,
                       notebook_timeout_seconds=60, max_output_mb=5, tmpfs_mb=32)
try:
    result = LocalSandboxRunner(kernel_python=kernel_python).run(
        RunSpec(workdir=workdir, notebook_path="nb.ipynb", limits=limits))
    print(json.dumps({"outcome": result.outcome, "message": result.message}))
except SandboxUnavailable as exc:
    print(json.dumps({"sandbox_unavailable": str(exc)}))
'''


def run_as_non_root_worker(workdir: Path, mode: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", NON_ROOT_WORKER, str(workdir), str(KERNEL_PYTHON), str(UNPRIVILEGED_UID), mode],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=180, check=False,
        env={"PATH": os.environ["PATH"], "DJANGO_SETTINGS_MODULE": "repository.settings",
             "NBARCHIVE_VAR_DIR": str(workdir.parent)})
    if "unshare(CLONE_NEWUSER)" in result.stderr:
        pytest.skip(f"this machine refuses user namespaces to the tests themselves: {result.stderr[-300:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_non_root_worker_runs_notebooks_where_user_namespaces_are_allowed(workdir):
    write_notebook(workdir, ["print(1)"])

    answer = run_as_non_root_worker(workdir, "allow")

    assert answer == {"outcome": "completed", "message": "The notebook ran to the end."}


def test_user_namespaces_refused_to_a_non_root_worker_are_the_operators_problem(workdir):
    write_notebook(workdir, ["print(1)"])

    answer = run_as_non_root_worker(workdir, "refuse")

    assert "sandbox_unavailable" in answer, answer  # not a verdict such as execution_failed
    message = answer["sandbox_unavailable"]
    assert "The sandbox could not start on this worker (bwrap: Creating new namespace failed" in message
    assert "user namespaces" in message and "run the worker as root" in message


# --- the collector, outside the sandbox, killed ---------------------------------------------------------------
def test_a_flood_past_the_output_cap_is_the_notebooks_resource_limit(workdir):
    write_notebook(workdir, [SMALL_MESSAGE_FLOOD])

    verification = verify(workdir, RUNNER, SandboxLimits(**{**FAST.__dict__, "cell_timeout_seconds": 50}))

    assert verification.verdict == "resource_limit", verification.message
    assert "outputs grew past the limit of 5 MB" in verification.message


def test_output_under_the_cap_that_exhausts_the_collectors_memory_is_the_notebooks_resource_limit(workdir,
                                                                                                   monkeypatch):
    """19 MB of empty JSON objects, under a 20 MB cap, are about 300 MB once read: past the collector's memory
    (its base allowance lowered from 1 GB, so that a 20 MB output is enough to exhaust it). It used to end
    `execution_failed`, as "not a valid Jupyter message (MemoryError)" or a collector gone without a result."""
    monkeypatch.setattr(sandbox, "COLLECTOR_BASE_MEMORY_MB", 256)
    write_notebook(workdir, [expanding_output_cell(19)])

    verification = verify(workdir, RUNNER, SandboxLimits(**{**FAST.__dict__, "max_output_mb": 20,
                                                            "memory_mb": 2048, "cell_timeout_seconds": 50}))

    assert verification.verdict == "resource_limit", verification.message
    assert "needed more memory to read than a run may use" in verification.message
    assert "under the output limit of 20 MB" in verification.message


def collector_of_this_process() -> int | None:
    """The collector this test started, once its kernel is up."""
    descendants = process_descendants(os.getpid())
    collectors = [pid for pid in descendants if "kernel_collector.py" in command_line(pid)]
    kernels = [pid for pid in descendants if "ipykernel_launcher" in command_line(pid)]
    return collectors[0] if collectors and kernels else None


@pytest.mark.parametrize(("signal_number", "said"), [
    (signal.SIGKILL, "was killed by signal 9 from outside the run (the machine's out-of-memory killer"),
    (signal.SIGSEGV, "failed (exit code -11) below its memory limit"),
])
def test_a_collector_that_dies_for_reasons_not_the_notebooks_is_the_operators_problem(workdir, signal_number, said):
    write_notebook(workdir, ["import time\ntime.sleep(40)"])
    outcome = {}

    def run():
        try:
            outcome["verification"] = verify(workdir, RUNNER)
        except SandboxUnavailable as exc:
            outcome["unavailable"] = str(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while (collector := collector_of_this_process()) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert collector is not None, "the notebook never started"
    time.sleep(1)

    os.kill(collector, signal_number)  # as the out-of-memory killer or an operator would; or a crash of its own
    thread.join(timeout=60)

    assert "unavailable" in outcome, outcome["verification"].message  # not a verdict such as execution_failed
    assert said in outcome["unavailable"] and "Nothing is known about the notebook" in outcome["unavailable"]
