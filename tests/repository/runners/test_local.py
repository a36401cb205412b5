"""The local sandbox runner with honest, sloppy and hostile notebooks: each ends in the verdict a moderator
would expect, and nothing inside reaches the worker's secrets, the network or files outside its folder.

Each test writes a notebook, runs it through `notebook_verify` (the path a submitted version takes) in the
real bubblewrap sandbox, and reads the verdict and the outputs.
"""

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest
from django.conf import settings
from nbformat.v4 import new_code_cell, new_notebook

from repository.runners.base import SandboxLimits
from repository.runners.compare import Tolerance
from repository.runners.local import LocalSandboxRunner
from repository.services.verification import notebook_verify
from tests.repository.runners.hostile_notebooks import (
    CLAIMED_RANDOM_NUMBER,
    SECRET_PROBE_CELLS,
    SMALL_MESSAGE_FLOOD,
    WORKER_SECRETS,
    attack_report,
    forging_notebook,
)
from tests.sandbox import kernel_python_or_skip_module

pytestmark = pytest.mark.sandbox

KERNEL_PYTHON = kernel_python_or_skip_module()

FAST = SandboxLimits(memory_mb=1024, cpu_seconds=20, max_processes=32, max_file_size_mb=64,
                     cell_timeout_seconds=15, notebook_timeout_seconds=60, max_output_mb=5, tmpfs_mb=32)
RUNNER = LocalSandboxRunner(kernel_python=KERNEL_PYTHON)


@pytest.fixture
def workdir():
    root = Path(tempfile.mkdtemp(prefix="nbarchive-test-run-"))
    root.chmod(0o755)
    (root / "work").mkdir()
    yield root / "work"
    shutil.rmtree(root, ignore_errors=True)


def write_notebook(workdir: Path, cells, *, kernelspec=None, name="nb.ipynb") -> Path:
    # An execution count on each cell, as Jupyter saves a notebook it ran: one never run is refused before running.
    notebook = new_notebook(cells=[c if isinstance(c, dict) else new_code_cell(c, execution_count=n)
                                   for n, c in enumerate(cells, start=1)])
    notebook.metadata["kernelspec"] = kernelspec or {"name": "python3", "display_name": "Python 3",
                                                     "language": "python"}
    path = workdir / name
    nbformat.write(notebook, path)
    return path


def verify(workdir: Path, limits: SandboxLimits = FAST, name="nb.ipynb"):
    return notebook_verify(workdir=workdir, notebook_path=name, runner=RUNNER, tolerance=Tolerance(), limits=limits)


def executed_cells(verification) -> list[dict]:
    return json.loads(verification.result.executed_notebook)["cells"]


def text_of(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts.append("".join(output.get("data", {}).get("text/plain", "")))
        parts.append(f"{output.get('ename', '')}: {output.get('evalue', '')}")
    return "\n".join(parts)


def as_submitted(workdir: Path, cells, name="nb.ipynb") -> None:
    """Write the notebook as its author would upload it: executed once, outputs stored."""
    write_notebook(workdir, cells, name=name)
    first = verify(workdir, name=name)
    assert first.result.outcome == "completed", first.message
    (workdir / name).write_bytes(first.result.executed_notebook)


def test_a_deterministic_numeric_notebook_reproduces(workdir):
    as_submitted(workdir, ["import numpy as np\nx = np.linspace(0, 1, 11)\nprint(x.sum(), x.mean())",
                           "import math\n{'pi': math.pi, 'n': 3}", "sorted({3, 1, 2})"])

    verification = verify(workdir)

    assert verification.verdict == "reproduced", verification.report
    assert verification.report["summary"]["code_cells"] == 3


def test_a_plotting_notebook_reproduces(workdir):
    as_submitted(workdir, ["import matplotlib.pyplot as plt\nimport numpy as np\n"
                           "fig, ax = plt.subplots(figsize=(3, 2))\n"
                           "ax.plot(np.sin(np.linspace(0, 6, 50)))\nplt.show()"])

    verification = verify(workdir)

    assert verification.verdict == "reproduced", verification.report
    outputs = executed_cells(verification)[0]["outputs"]
    assert any("image/png" in output.get("data", {}) for output in outputs)


def test_float_noise_in_the_stored_output_is_within_tolerance(workdir):
    as_submitted(workdir, ["print(0.1 + 0.2)"])
    notebook = json.loads((workdir / "nb.ipynb").read_text())
    notebook["cells"][0]["outputs"][0]["text"] = ["0.30000000000000004\n".replace("04", "05")]
    (workdir / "nb.ipynb").write_text(json.dumps(notebook))

    verification = verify(workdir)

    assert verification.verdict == "reproduced_with_differences", verification.report


def test_an_edited_stored_output_is_not_reproduced(workdir):
    as_submitted(workdir, ["print(6 * 7)"])
    notebook = json.loads((workdir / "nb.ipynb").read_text())
    notebook["cells"][0]["outputs"][0]["text"] = ["43\n"]
    (workdir / "nb.ipynb").write_text(json.dumps(notebook))

    verification = verify(workdir)

    assert verification.verdict == "not_reproduced"
    assert verification.report["cells"][0]["status"] == "differs"


def test_an_unseeded_random_number_is_not_reproduced(workdir):
    as_submitted(workdir, ["import random\nprint(random.random())"])

    verification = verify(workdir)

    assert verification.verdict == "not_reproduced"


def test_an_exception_fails_the_run_naming_the_cell_and_error(workdir):
    write_notebook(workdir, ["x = 1", "1 / 0", "print('never')"])

    verification = verify(workdir)

    assert verification.verdict == "execution_failed"
    assert "Cell 1" in verification.message and "ZeroDivisionError" in verification.message
    assert executed_cells(verification)[2]["outputs"] == []


def test_a_missing_package_fails_the_run_with_a_clear_message(workdir):
    write_notebook(workdir, ["import surely_not_an_installed_package"])

    verification = verify(workdir)

    assert verification.verdict == "execution_failed"
    assert "No module named 'surely_not_an_installed_package'" in verification.message


def test_an_infinite_loop_times_out(workdir):
    write_notebook(workdir, ["while True:\n    pass"])

    verification = verify(workdir, SandboxLimits(**{**FAST.__dict__, "cell_timeout_seconds": 3}))

    assert verification.verdict == "timed_out"
    assert "3 s" in verification.message


def test_the_whole_notebook_has_a_wall_clock(workdir):
    write_notebook(workdir, ["import time\ntime.sleep(2)"] * 4)

    verification = verify(workdir, SandboxLimits(**{**FAST.__dict__, "notebook_timeout_seconds": 5}))

    assert verification.verdict == "timed_out"
    assert "longer than 5 s" in verification.message


def test_a_memory_bomb_hits_the_memory_limit(workdir):
    write_notebook(workdir, ["blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))"])

    verification = verify(workdir)

    assert verification.verdict == "resource_limit"
    assert "memory" in verification.message


def test_a_fork_bomb_hits_the_process_limit(workdir):
    write_notebook(workdir, ["import os, time\nchildren = []\nfor _ in range(200):\n    pid = os.fork()\n"
                             "    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n    children.append(pid)"])

    verification = verify(workdir)

    assert verification.verdict == "resource_limit"
    assert "processes" in verification.message


def test_a_large_file_write_hits_the_file_size_limit(workdir):
    write_notebook(workdir, ["with open('big.bin', 'wb') as f:\n    for _ in range(100):\n"
                             "        f.write(b'0' * 1024 * 1024)"])

    verification = verify(workdir)

    assert verification.verdict == "resource_limit"
    assert "64 MB" in verification.message


def test_burning_cpu_hits_the_cpu_limit(workdir):
    write_notebook(workdir, ["while True:\n    pass"])

    verification = verify(workdir, SandboxLimits(**{**FAST.__dict__, "cpu_seconds": 3, "cell_timeout_seconds": 30}))

    assert verification.verdict == "resource_limit"
    assert "CPU" in verification.message


def test_huge_outputs_hit_the_output_limit(workdir):
    write_notebook(workdir, ["print('x' * 3_000_000)", "print('y' * 3_000_000)"])

    verification = verify(workdir)

    assert verification.verdict == "resource_limit"
    assert "outputs" in verification.message


def test_printing_200_mb_quickly_hits_the_output_limit_within_the_wall_clock(workdir):
    write_notebook(workdir, ["for _ in range(200):\n    print('x' * 1_000_000)"])

    verification = verify(workdir)

    assert verification.verdict == "resource_limit", verification.message
    assert "outputs grew past the limit of 5 MB at cell 0" in verification.message
    assert verification.report["execution"]["seconds"] < FAST.notebook_timeout_seconds


def test_one_huge_output_message_hits_the_output_limit(workdir):
    """One 200 MB stream message: ZeroMQ refuses the frame and the broken connection is the breach."""
    write_notebook(workdir, ["print('x' * 200_000_000)"])

    verification = verify(workdir, SandboxLimits(**{**FAST.__dict__, "memory_mb": 2048}))

    assert verification.verdict == "resource_limit", verification.message
    assert "output limit of 5 MB" in verification.message


def test_a_flood_of_small_messages_hits_the_output_limit_within_the_wall_clock(workdir):
    """Every message counts with its envelope: a million one-character outputs is not 1 MB of output."""
    write_notebook(workdir, [SMALL_MESSAGE_FLOOD])

    # The kernel itself needs some seconds for the messages that make 5 MB: on a busy machine, more than 15.
    verification = verify(workdir, SandboxLimits(**{**FAST.__dict__, "cell_timeout_seconds": 50}))

    assert verification.verdict == "resource_limit", verification.message
    assert "outputs grew past the limit of 5 MB at cell 0" in verification.message
    assert verification.report["execution"]["seconds"] < FAST.notebook_timeout_seconds


def test_garbage_on_the_kernel_sockets_fails_the_run(workdir):
    write_notebook(workdir, ["import time\nkernel = get_ipython().kernel\nfor _ in range(10):\n"
                             "    kernel.iopub_socket.send_multipart([b'garbage', b'\\xff' * 1000])\ntime.sleep(10)"])

    verification = verify(workdir)

    assert verification.verdict == "execution_failed", verification.message
    assert "not a valid Jupyter message" in verification.message


def test_a_chatty_cell_keeps_every_output_in_order(workdir):
    """A burst of messages the collector reads more slowly than the kernel sends is queued, never dropped."""
    as_submitted(workdir, ["from IPython.display import display\nfor i in range(3000):\n    display(i)\nprint('end')"])

    verification = verify(workdir)

    assert verification.verdict == "reproduced", verification.report
    outputs = executed_cells(verification)[0]["outputs"]
    assert [int("".join(output["data"]["text/plain"])) for output in outputs[:-1]] == list(range(3000))


def test_shared_memory_is_a_small_tmpfs(workdir):
    """Not the host's /dev/shm, half of its memory and outside RLIMIT_AS: 160 MB in files under the 64 MB file
    size limit do not fit."""
    write_notebook(workdir, ["try:\n    for n in range(10):\n        with open(f'/dev/shm/fill{n}', 'wb') as f:\n"
                             "            f.write(b'0' * 16 * 1024 * 1024)\n    print('wrote 160 MB')\n"
                             "except OSError as exc:\n    print('refused', exc.errno)"])

    verification = verify(workdir)

    assert verification.result.outcome == "completed", verification.message
    assert "refused 28" in text_of(executed_cells(verification)[0])  # ENOSPC at the tmpfs' 64 MB


def test_the_network_is_unreachable(workdir):
    probe = ("import socket\nfor address in [('127.0.0.1', 5432), ('127.0.0.1', 6379), ('1.1.1.1', 443), "
             "('10.0.0.1', 80)]:\n    try:\n        socket.create_connection(address, timeout=3)\n"
             "        print(address, 'CONNECTED')\n    except OSError as exc:\n"
             "        print(address, 'refused', exc.errno)")
    write_notebook(workdir, [probe])

    verification = verify(workdir)

    output = text_of(executed_cells(verification)[0])
    assert verification.result.outcome == "completed"
    assert "CONNECTED" not in output and output.count("refused") == 4


def test_no_secret_of_the_worker_reaches_the_notebook(workdir, monkeypatch):
    monkeypatch.setenv("NBARCHIVE_TEST_SECRET", "hunter2-secret-value")
    write_notebook(workdir, [
        "import os\nprint(sorted(os.environ.items()))",
        "print(open('/proc/1/environ').read())\nprint(open('/proc/1/cmdline').read())",
        "import os\nprint([open(f'/proc/{p}/environ').read() for p in os.listdir('/proc') if p.isdigit()])",
    ])

    verification = verify(workdir)

    everything = json.dumps(executed_cells(verification))
    assert verification.result.outcome == "completed", verification.message
    for secret in ("hunter2-secret-value", "DATABASE_URL", "SECRET_KEY", "S3_SECRET", "AWS_"):
        assert secret not in everything


def test_the_connection_file_and_every_process_environment_hold_no_worker_secret(workdir, monkeypatch):
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    write_notebook(workdir, SECRET_PROBE_CELLS)

    verification = verify(workdir)

    assert verification.result.outcome == "completed", verification.message
    cells = executed_cells(verification)
    assert '"transport": "ipc"' in text_of(cells[1])  # the notebook did read the connection file
    assert "PYTHONHASHSEED" in text_of(cells[2])  # and the environments it could see
    for value in WORKER_SECRETS.values():
        assert value not in json.dumps(cells) and value not in verification.result.logs


def test_the_notebook_cannot_write_outside_its_folder_or_see_the_host(workdir):
    project = str(Path(settings.BASE_DIR))
    write_notebook(workdir, [
        "import os\nresults = {}\nfor path in ['/usr/evil', '/etc/evil', '/opt/kernel-env/evil', '/evil']:\n"
        "    try:\n        open(path, 'w').write('x')\n        results[path] = 'WRITTEN'\n"
        "    except OSError as exc:\n        results[path] = type(exc).__name__\nprint(results)",
        f"import os\nprint('project visible' if os.path.exists({project!r}) else 'project hidden')\n"
        "print('shadow visible' if os.path.exists('/etc/shadow') else 'shadow hidden')\n"
        "print('home visible' if os.path.exists('/root') else 'root hidden')",
        "open('result.txt', 'w').write('ok')\nprint(open('result.txt').read())",
    ])

    verification = verify(workdir)

    cells = executed_cells(verification)
    assert verification.result.outcome == "completed", verification.message
    assert "WRITTEN" not in text_of(cells[0])
    assert "project hidden" in text_of(cells[1]) and "shadow hidden" in text_of(cells[1])
    assert "root hidden" in text_of(cells[1])
    assert "ok" in text_of(cells[2])


def test_a_notebook_cannot_forge_its_verdict(workdir):
    """Against the driver that ran beside the kernel, this notebook came out "reproduced": its detached child
    stopped the driver, replaced the executed notebook and the status with the submitted ones and resumed it."""
    (workdir / "nb.ipynb").write_text(forging_notebook("nb.ipynb"))

    verification = verify(workdir)

    attack = attack_report(workdir)
    assert attack["stopped"] > 0 and attack["written"] > 0 and attack["ptrace_attempts"] > 0  # it did try
    assert verification.verdict == "execution_failed", verification.report
    assert "Cell 2 raised RuntimeError: this notebook does not run" in verification.message
    fresh = executed_cells(verification)
    assert CLAIMED_RANDOM_NUMBER not in text_of(fresh[1])
    assert fresh[2]["outputs"][0]["ename"] == "RuntimeError"


def test_a_detached_process_does_not_outlive_the_run(workdir):
    marker = f"nbarchive-detached-{os.getpid()}"
    write_notebook(workdir, [f"import subprocess\nsubprocess.Popen(['sh', '-c', 'exec -a {marker} sleep 300'], "
                             "start_new_session=True)\nprint('started')"])

    verification = verify(workdir)

    assert verification.result.outcome == "completed"
    survivors = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith(marker)]
    assert survivors == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_an_unsupported_kernel_is_a_verdict(workdir):
    write_notebook(workdir, ["print(1)"], kernelspec={"name": "ir", "display_name": "R", "language": "R"})

    verification = verify(workdir)

    assert verification.verdict == "unsupported_kernel"
    assert "'R'" in verification.message


def test_an_invalid_notebook_is_a_verdict(workdir):
    (workdir / "nb.ipynb").write_text('{"cells": "no"}')

    verification = verify(workdir)

    assert verification.verdict == "invalid_notebook"


def test_the_report_records_the_environment_that_ran_it(workdir):
    as_submitted(workdir, ["print('hello')"])

    verification = verify(workdir)

    environment = verification.report["environment"]
    assert environment["runner"] == "local" and environment["sandbox"] == "bubblewrap"
    assert environment["python_version"].startswith("3.")
    assert "nbclient" in {name.lower() for name in environment["packages"]}


def test_concurrent_runs_do_not_share_the_process_limit(workdir):
    """One run holding every process it may have must not starve another run started beside it."""
    hog_dir, normal_dir = workdir / "hog", workdir / "normal"
    for folder in (hog_dir, normal_dir):
        folder.mkdir()
    write_notebook(hog_dir, ["import os, time\nchildren = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
                             "            time.sleep(60)\n            os._exit(0)\n        children += 1\n"
                             "except OSError:\n    pass\ntime.sleep(10)\nprint(children)"])
    write_notebook(normal_dir, ["print('still fine')"])
    results = {}

    hog = threading.Thread(target=lambda: results.setdefault("hog", verify(hog_dir)))
    hog.start()
    time.sleep(4)  # the hog has forked up to its limit by now and holds its children
    results["normal"] = verify(normal_dir)
    hog.join()

    assert results["normal"].result.outcome == "completed", results["normal"].message
    assert results["hog"].result.outcome == "completed", results["hog"].message
    assert int(text_of(executed_cells(results["hog"])[0]).split()[0]) > 10


def test_peak_memory_counts_the_kernel(workdir):
    write_notebook(workdir, ["import numpy as np, time\nblock = np.ones(40 * 1024 * 1024 // 8 * 5)\n"
                             "time.sleep(1)\nprint(block.nbytes)"])

    verification = verify(workdir)

    assert verification.result.outcome == "completed"
    assert verification.result.peak_memory_bytes > 200 * 1024 * 1024
