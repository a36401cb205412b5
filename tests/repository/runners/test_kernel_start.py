"""The kernel starts from nbarchive's own launcher, and whether the sandbox came up is bwrap's word.

An upload is a folder of files chosen by the author. Started as `python -m ipykernel_launcher` in that folder, the
kernel imported an uploaded `ipykernel_launcher.py` (or `zmq.py`) before itself; one that printed
`bwrap: ... Permission denied` and exited turned the notebook's verdict into the operator's run error, retried and
never judged. Now nothing in the notebook's folder runs before the kernel is up, cells still import the helper
modules shipped beside the notebook, and a kernel that dies at start-up (whatever it prints) is the notebook's
verdict, while a sandbox bwrap could not set up stays the operator's problem (tests/.../test_sandbox_faults.py).
"""

import json
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from repository.runners import sandbox
from repository.runners.base import SandboxLimits
from repository.runners.compare import Tolerance
from repository.runners.local import LocalSandboxRunner
from repository.runners.sandbox import SandboxUnavailable
from repository.services.verification import notebook_verify
from tests.sandbox import kernel_python_or_skip_module

pytestmark = pytest.mark.sandbox

KERNEL_PYTHON = kernel_python_or_skip_module()

FAST = SandboxLimits(memory_mb=1024, cpu_seconds=20, max_processes=32, max_file_size_mb=64,
                     cell_timeout_seconds=30, notebook_timeout_seconds=60, max_output_mb=5, tmpfs_mb=32)
RUNNER = LocalSandboxRunner(kernel_python=KERNEL_PYTHON)
FAKE_BWRAP_FAILURE = "bwrap: Can't find source path /opt/kernel-env: Permission denied"
# What an author can upload beside the notebook to take over a kernel started in its folder: it says what a
# sandbox that could not start says, and exits before the kernel opens its sockets.
HIJACK = f"import sys\nprint({FAKE_BWRAP_FAILURE!r}, file=sys.stderr, flush=True)\nsys.exit(1)\n"


@pytest.fixture
def workdir():
    root = Path(tempfile.mkdtemp(prefix="nbarchive-test-kernel-start-"))
    root.chmod(0o755)
    (root / "work").mkdir()
    yield root / "work"
    shutil.rmtree(root, ignore_errors=True)


def write_notebook(workdir: Path, cells, name="nb.ipynb") -> None:
    notebook = new_notebook(cells=[new_code_cell(source, execution_count=n) for n, source in enumerate(cells, 1)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, workdir / name)


def verify(workdir: Path, runner: LocalSandboxRunner = RUNNER, name="nb.ipynb"):
    return notebook_verify(workdir=workdir, notebook_path=name, runner=runner, tolerance=Tolerance(), limits=FAST)


def printed(verification) -> str:
    cells = json.loads(verification.result.executed_notebook)["cells"]
    return "".join("".join(output.get("text", "")) for cell in cells for output in cell.get("outputs", []))


def plant_hijackers(folder: Path) -> None:
    for name in ("ipykernel_launcher.py", "zmq.py", "ipykernel.py", "traitlets.py", "jupyter_client.py"):
        (folder / name).write_text(HIJACK)


def test_files_beside_the_notebook_do_not_take_over_the_kernels_start(workdir):
    plant_hijackers(workdir)
    write_notebook(workdir, ["print('the kernel is ours', 6 * 7)"])

    verification = verify(workdir)

    assert verification.result.outcome == "completed", verification.message
    assert "the kernel is ours 42" in printed(verification)


def test_a_notebook_in_a_subfolder_is_not_taken_over_either(workdir):
    (workdir / "analysis").mkdir()
    plant_hijackers(workdir / "analysis")
    write_notebook(workdir, ["print('still ours')"], name="analysis/nb.ipynb")

    verification = verify(workdir, name="analysis/nb.ipynb")

    assert verification.result.outcome == "completed", verification.message
    assert "still ours" in printed(verification)


def test_cells_import_helper_modules_shipped_beside_the_notebook(workdir):
    (workdir / "helpers.py").write_text("def answer():\n    return 42\n")
    (workdir / "analysis").mkdir()
    (workdir / "analysis" / "local_helpers.py").write_text("NAME = 'beside the notebook'\n")
    write_notebook(workdir, ["import os, sys\nprint(os.getcwd(), '' in sys.path)"], name="nb.ipynb")
    write_notebook(workdir / "analysis", ["import local_helpers\nprint(local_helpers.NAME)"], name="nb.ipynb")
    write_notebook(workdir, ["import helpers\nprint('answer', helpers.answer())"], name="uses_helpers.ipynb")

    at_top = verify(workdir, name="nb.ipynb")
    with_helper = verify(workdir, name="uses_helpers.ipynb")
    in_subfolder = verify(workdir, name="analysis/nb.ipynb")

    assert "/work True" in printed(at_top), printed(at_top)  # the working folder is on sys.path, as in Jupyter
    assert with_helper.result.outcome == "completed", with_helper.message
    assert "answer 42" in printed(with_helper)
    assert in_subfolder.result.outcome == "completed", in_subfolder.message
    assert "beside the notebook" in printed(in_subfolder)


def test_a_helper_module_that_prints_bwrap_lines_and_exits_is_the_notebooks_verdict(workdir):
    """Imported by a cell, a helper can still do what a hijacker did at start: then the kernel died running
    the notebook, and that is its verdict, whatever the lines it printed look like."""
    (workdir / "helpers.py").write_text(HIJACK)
    write_notebook(workdir, ["import helpers"])

    verification = verify(workdir)

    assert verification.verdict in ("execution_failed", "resource_limit"), verification.message


def test_a_kernel_that_dies_at_start_saying_bwrap_lines_is_the_notebooks_verdict(workdir):
    """As an author's image can make its Python do (a sitecustomize, or a PYTHONPATH into the notebook's
    folder): the kernel's Python starts, prints what a failing bwrap prints, and exits before the kernel is up.
    bwrap has started it, so this is a verdict (execution_failed), not the operator's retried run error."""
    fake_env = Path(tempfile.mkdtemp(prefix="nbarchive-test-dying-env-"))
    try:
        fake_env.chmod(0o755)
        (fake_env / "bin").mkdir(mode=0o755)
        python = fake_env / "bin" / "python3"
        python.write_text(f"#!/bin/sh\necho \"{FAKE_BWRAP_FAILURE}\" >&2\necho 'env: also not ours' >&2\nexit 1\n")
        python.chmod(0o755)
        write_notebook(workdir, ["print(1)"])

        verification = verify(workdir, LocalSandboxRunner(kernel_python=python))
    finally:
        shutil.rmtree(fake_env)

    assert verification.verdict == "execution_failed", verification.message
    assert "the kernel exited with code 1 before it was ready" in verification.message
    assert "Nothing is known about the notebook" not in verification.message


def test_a_tool_in_front_of_bwrap_that_fails_is_the_operators_problem(workdir, monkeypatch):
    """setpriv and env run before bwrap: when one of them fails, bwrap never reports anything, which is just as
    much a sandbox that never started (here env cannot find bwrap on the PATH it was given)."""
    monkeypatch.setitem(sandbox.SANDBOX_ENV, "PATH", "/nowhere")
    write_notebook(workdir, ["print(1)"])

    with pytest.raises(SandboxUnavailable) as failed:
        verify(workdir)

    assert "The sandbox could not start on this worker (env: " in str(failed.value)
    assert "Nothing is known about the notebook" in str(failed.value)
