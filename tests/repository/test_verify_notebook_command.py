"""`manage.py verify_notebook` as a submitter would run it before uploading."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from repository import demo
from tests.repository.runners.hostile_notebooks import CLAIMED_RANDOM_NUMBER, forging_notebook
from tests.sandbox import needs_sandbox

pytestmark = [pytest.mark.sandbox, needs_sandbox]
ROOT = Path(__file__).resolve().parents[2]


def verify_notebook(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "verify_notebook", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def demo_files(tmp_path):
    (tmp_path / "thermal.ipynb").write_bytes(demo.notebook())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "measurements.csv").write_bytes(demo.measurements_csv())
    return tmp_path


def test_the_demo_notebook_with_its_data_reproduces(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("verdict: reproduced")
    assert "cell   1: identical" in result.stdout


def test_json_output_carries_the_per_cell_report(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", f"{demo_files / 'data'}=data", "--json")

    report = json.loads(result.stdout)
    assert report["verdict"] == "reproduced"
    assert [cell["status"] for cell in report["cells"]] == ["identical", "identical"]
    assert report["environment"]["runner"] == "local"


def test_without_its_data_the_run_completes_with_a_failing_verdict_and_exit_0(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb")

    assert result.returncode == 0
    assert result.stdout.startswith("verdict: execution_failed")
    assert "FileNotFoundError" in result.stdout


def test_a_notebook_that_attacks_the_runner_gets_an_honest_verdict(tmp_path):
    """It came out "reproduced, all cells reproduced" when its child could overwrite the driver's results."""
    (tmp_path / "forged.ipynb").write_text(forging_notebook("forged.ipynb"))

    result = verify_notebook(tmp_path / "forged.ipynb", "--json")

    report = json.loads(result.stdout)
    assert report["verdict"] == "execution_failed", report
    assert report["message"] == "Cell 2 raised RuntimeError: this notebook does not run"
    assert report["cells"][1]["status"] == "differs"  # the fresh random number, not the claimed one
    assert CLAIMED_RANDOM_NUMBER not in report["cells"][1]["outputs"][0]["actual"]


def test_a_missing_file_is_a_one_line_error(tmp_path):
    result = verify_notebook(tmp_path / "nope.ipynb")

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"CommandError: No notebook file at {tmp_path / 'nope.ipynb'}."]


def test_a_data_target_outside_the_working_directory_is_refused(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", f"{demo_files / 'data'}=../escape")

    assert result.returncode != 0
    assert "inside the working directory" in result.stderr
