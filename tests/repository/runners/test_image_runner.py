"""The image runner with real images: the pinned image decides what a notebook can import and which Python runs
it, what goes wrong with the image is the operator's (a run error), never the notebook's verdict, and nothing of
the worker reaches the kernel.

The images are those of tests/images (minimal: python3 + ipykernel; scientific: + numpy, scipy, matplotlib,
fonts), served by a docker-registry on loopback; each test runs `notebook_verify`, the path a submission takes.
"""

import json
import shutil
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from repository.runners.base import RunnerGaveUp, RunnerUnavailable, SandboxLimits
from repository.runners.compare import Tolerance
from repository.runners.image import ImageRunner
from repository.services.verification import notebook_verify
from tests.repository.runners.hostile_notebooks import SECRET_PROBE_CELLS, WORKER_SECRETS

pytestmark = [pytest.mark.images, pytest.mark.sandbox]

FAST = SandboxLimits(memory_mb=2048, cpu_seconds=60, max_processes=32, max_file_size_mb=64,
                     cell_timeout_seconds=60, notebook_timeout_seconds=120, max_output_mb=5, tmpfs_mb=64)
MISSING_DIGEST = "sha256:" + "0" * 64


@pytest.fixture
def workdir():
    root = Path(tempfile.mkdtemp(prefix="nbarchive-test-image-run-"))
    root.chmod(0o755)
    (root / "work").mkdir()
    yield root / "work"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def runner(shared_image_cache) -> ImageRunner:
    return ImageRunner(cache_factory=lambda: shared_image_cache)


def write_notebook(workdir: Path, cells) -> None:
    notebook = new_notebook(cells=[new_code_cell(source, execution_count=n) for n, source in enumerate(cells, 1)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, workdir / "nb.ipynb")


def verify(workdir: Path, runner: ImageRunner, image: str):
    return notebook_verify(workdir=workdir, notebook_path="nb.ipynb", runner=runner, tolerance=Tolerance(),
                           limits=FAST, container_image=image)


def as_submitted(workdir: Path, runner: ImageRunner, image: str, cells) -> None:
    """The notebook as its author would upload it: executed once in the image, outputs stored, and no stderr
    stream (an author's clean notebook has no library chatter, so the fresh run must have none either)."""
    write_notebook(workdir, cells)
    first = verify(workdir, runner, image)
    assert first.result.outcome == "completed", first.message
    notebook = json.loads(first.result.executed_notebook)
    for cell in notebook["cells"]:
        cell["outputs"] = [o for o in cell.get("outputs", []) if o.get("name") != "stderr"]
    (workdir / "nb.ipynb").write_text(json.dumps(notebook))


def text_of(verification) -> str:
    cells = json.loads(verification.result.executed_notebook)["cells"]
    return json.dumps([cell.get("outputs", []) for cell in cells])


SCIPY_CELLS = ["import scipy, sys\nprint(scipy.__version__, sys.version_info[:2])",
               "from scipy import integrate\nprint(round(integrate.quad(lambda x: x * x, 0, 3)[0], 6))"]


def test_a_scipy_notebook_reproduces_in_the_scientific_image(workdir, runner, scientific_image_ref):
    as_submitted(workdir, runner, scientific_image_ref, SCIPY_CELLS)

    verification = verify(workdir, runner, scientific_image_ref)

    assert verification.verdict == "reproduced", verification.message
    environment = verification.report["environment"]
    assert environment["runner"] == "image" and environment["image"] == scientific_image_ref
    assert environment["manifest_digest"].startswith("sha256:")
    assert environment["kernel_python"] == "/usr/bin/python3"
    assert environment["python_version"].startswith("3.11")  # Debian bookworm's, not the worker's venv
    assert any(p.startswith("numpy==") for p in environment["packages"])
    assert "bubblewrap" in environment["kernel_isolation"]


def test_the_same_notebook_fails_in_the_minimal_image_naming_the_missing_module(workdir, runner, minimal_image_ref,
                                                                                scientific_image_ref):
    as_submitted(workdir, runner, scientific_image_ref, SCIPY_CELLS)

    verification = verify(workdir, runner, minimal_image_ref)

    assert verification.verdict == "execution_failed"
    assert "No module named 'scipy'" in verification.message and minimal_image_ref in verification.message
    assert not any(p.lower().startswith("numpy==") for p in verification.report["environment"]["packages"])


def test_a_clean_matplotlib_notebook_reproduces_without_fontconfig_chatter(workdir, runner, scientific_image_ref):
    cells = ["import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(3, 2))\n"
             "ax.plot([0, 1, 2], [0, 1, 4])\nax.set_title('Squares')\nax.set_xlabel('x')\nplt.show()",
             "import matplotlib.font_manager as fm\nprint(len(fm.findSystemFonts()) > 0)"]
    as_submitted(workdir, runner, scientific_image_ref, cells)

    verification = verify(workdir, runner, scientific_image_ref)

    assert "Fontconfig" not in text_of(verification) and "font cache" not in text_of(verification)
    assert verification.verdict == "reproduced", (verification.message, text_of(verification)[:2000])


def test_a_digest_the_registry_does_not_have_is_the_operators_problem_and_retried(workdir, runner, image_registry):
    write_notebook(workdir, ["print(1)"])

    with pytest.raises(RunnerUnavailable) as failed:
        verify(workdir, runner, f"{image_registry.host}/nbarchive-tests/minimal@{MISSING_DIGEST}")

    assert "registry does not have" in str(failed.value).lower() or "not found" in str(failed.value).lower()


def test_an_image_without_ipykernel_is_unsupported_naming_what_is_missing(workdir, runner, tiny_image_ref):
    image = tiny_image_ref("no-kernel", {"/etc/os-release": b"ID=none\n"})
    write_notebook(workdir, ["print(1)"])

    verification = verify(workdir, runner, image)

    assert verification.verdict == "unsupported_image"
    assert "no python with ipykernel" in verification.message and "/usr/bin" in verification.message


def test_a_worker_secret_never_reaches_a_kernel_in_an_image(workdir, runner, minimal_image_ref, monkeypatch):
    for name, value in WORKER_SECRETS.items():
        monkeypatch.setenv(name, value)
    write_notebook(workdir, SECRET_PROBE_CELLS)

    verification = verify(workdir, runner, minimal_image_ref)

    assert verification.result.outcome == "completed", verification.message
    everything = text_of(verification) + verification.result.logs
    assert '\\"transport\\": \\"ipc\\"' in everything  # the notebook did read the connection file
    assert "PYTHONHASHSEED" in everything  # and the environments it could see
    for value in WORKER_SECRETS.values():
        assert value not in everything


def test_a_version_without_an_image_is_refused_without_a_verdict(workdir, runner):
    write_notebook(workdir, ["print(1)"])

    with pytest.raises(RunnerGaveUp, match="pins no container image"):
        verify(workdir, runner, "")


def test_files_beside_the_notebook_do_not_take_over_an_images_kernel_and_helpers_import(workdir, runner,
                                                                                      minimal_image_ref):
    """Debian's Python 3.11 and ipykernel in the image: an uploaded ipykernel_launcher.py or zmq.py that says
    what a failing bwrap says and exits used to end the run as the operator's error; a helper module beside the
    notebook must still import from a cell."""
    hijack = "import sys\nprint('bwrap: Creating new namespace failed', file=sys.stderr)\nsys.exit(1)\n"
    for name in ("ipykernel_launcher.py", "zmq.py"):
        (workdir / name).write_text(hijack)
    (workdir / "helpers.py").write_text("def answer():\n    return 42\n")
    write_notebook(workdir, ["import helpers\nprint('answer', helpers.answer())"])

    verification = verify(workdir, runner, minimal_image_ref)

    assert verification.result.outcome == "completed", verification.message
    assert "answer 42" in text_of(verification)
