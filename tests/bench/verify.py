"""Benchmark: verifying notebooks in the sandbox vs plain `jupyter nbconvert --to notebook --execute`.

    .venv/bin/python tests/bench/verify.py [--repeat 3]
    .venv/bin/python tests/bench/verify.py --runner image [--repeat 3] [--cold-repeat 3] [--cold-notebook stdlib]

For each notebook of a small corpus (standard library, NumPy, pandas, a matplotlib figure, the demo with its
data file) it times nbarchive's whole verification path (raw validation, bubblewrap sandbox, nbclient,
comparison of every output) and nbconvert executing the same notebook with the same kernel environment, and
prints per-notebook seconds and the ratio of the totals (target: <= 1.3). Both sides run alternately in one
process, so machine load affects them alike; the best of --repeat runs is kept for each.

`--runner image` measures the image runner instead (verify_image.py; needs skopeo, umoci, docker-registry, bwrap
and mmdebstrap, or the test images already built): warm, the image cached, against nbconvert with its kernel in
the same unpacked image (target <= 1.1); cold, an empty cache, against `skopeo copy` + `umoci unpack` alone
(target <= 1.3).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "repository.settings")
os.environ.setdefault("NBARCHIVE_VAR_DIR", tempfile.mkdtemp(prefix="nbarchive-bench-"))

import django  # noqa: E402

django.setup()

import nbformat  # noqa: E402
from django.conf import settings  # noqa: E402
from nbformat.v4 import new_code_cell, new_notebook  # noqa: E402

from repository import demo  # noqa: E402
from repository.runners.local import LocalSandboxRunner  # noqa: E402
from repository.services.verification import default_tolerance, limits_from_settings, notebook_verify  # noqa: E402

CORPUS = {
    "stdlib": ["import statistics, math\nvalues = [math.sin(i / 10) for i in range(1000)]\n"
               "print(statistics.mean(values), statistics.stdev(values))"],
    "numpy": ["import numpy as np\nrng = np.random.default_rng(42)\na = rng.normal(size=(300, 300))\n"
              "print(np.linalg.eigvalsh(a @ a.T)[:5])", "a.sum(axis=0)[:10]"],
    "pandas": ["import pandas as pd\nimport numpy as np\n"
               "df = pd.DataFrame({'x': np.arange(100), 'y': np.arange(100) ** 2})\ndf.describe()",
               "df.groupby(df.x % 5).y.mean()"],
    "matplotlib": ["import matplotlib.pyplot as plt\nimport numpy as np\nfig, ax = plt.subplots(figsize=(4, 3))\n"
                   "ax.plot(np.sin(np.linspace(0, 10, 200)))\nplt.show()"],
}


def make_workdir(name: str, cells: list[str] | None) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    root.chmod(0o755)
    work = root / "work"
    work.mkdir()
    if cells is None:
        (work / "nb.ipynb").write_bytes(demo.notebook())
        (work / "data").mkdir()
        (work / demo.DATA_PATH).write_bytes(demo.measurements_csv())
    else:
        notebook = new_notebook(cells=[new_code_cell(c, execution_count=n) for n, c in enumerate(cells, start=1)])
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, work / "nb.ipynb")
    return work


def time_nbarchive(work: Path, runner) -> tuple[float, str]:
    started = time.perf_counter()
    verification = notebook_verify(workdir=work, notebook_path="nb.ipynb", runner=runner,
                                   tolerance=default_tolerance(), limits=limits_from_settings())
    return time.perf_counter() - started, verification.verdict


def time_nbconvert(work: Path, kernel_python: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(kernel_python), "-m", "nbconvert", "--to", "notebook", "--execute", "nb.ipynb",
                    "--output", "nbconvert-out.ipynb"], cwd=work, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runner", choices=("local", "image"), default="local")
    parser.add_argument("--cold-repeat", type=int, default=3, help="image runner: cold pulls per side")
    parser.add_argument("--cold-notebook", choices=("stdlib", "numpy", "matplotlib"), default="stdlib")
    args = parser.parse_args()
    if args.runner == "image":
        from tests.bench import verify_image

        verify_image.main(repeat=args.repeat, cold_repeat=args.cold_repeat, cold_notebook=args.cold_notebook,
                          corpus=CORPUS, make_workdir=make_workdir)
        return
    kernel_python = Path(settings.RUNNER_KERNEL_PYTHON)
    runner = LocalSandboxRunner(kernel_python=kernel_python)
    runner.environment()  # warm the environment description cache, as a long-running worker has it

    rows, total_ours, total_theirs = [], 0.0, 0.0
    for name, cells in [*CORPUS.items(), ("demo+data", None)]:
        work = make_workdir(name, cells)
        # Submitted outputs must come from a real execution, as an author's would.
        subprocess.run([str(kernel_python), "-m", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                        "nb.ipynb"], cwd=work, check=True, capture_output=True, timeout=600)
        ours, theirs, verdict = [], [], ""
        for _ in range(args.repeat):
            seconds, verdict = time_nbarchive(work, runner)
            ours.append(seconds)
            theirs.append(time_nbconvert(work, kernel_python))
        rows.append((name, min(ours), min(theirs), verdict))
        total_ours += min(ours)
        total_theirs += min(theirs)
        shutil.rmtree(work.parent, ignore_errors=True)

    print(f"{'notebook':<12} {'nbarchive s':>12} {'nbconvert s':>12} {'ratio':>6}  verdict")
    for name, ours, theirs, verdict in rows:
        print(f"{name:<12} {ours:>12.2f} {theirs:>12.2f} {ours / theirs:>6.2f}  {verdict}")
    print(f"{'total':<12} {total_ours:>12.2f} {total_theirs:>12.2f} {total_ours / total_theirs:>6.2f}  (target <= 1.3)")


if __name__ == "__main__":
    main()
