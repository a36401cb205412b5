"""`manage.py verify_notebook` as a submitter would run it before uploading: the same staging, sandbox and
comparison as a submitted version, so a data reference that does not verify fails the run there too."""

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from repository import demo
from tests.repository.runners.hostile_notebooks import CLAIMED_RANDOM_NUMBER, forging_notebook
from tests.sandbox import SANDBOX_READY


def needs_sandbox(test):
    for mark in (pytest.mark.sandbox,
                 pytest.mark.skipif(not SANDBOX_READY, reason="bubblewrap or the kernel environment is missing")):
        test = mark(test)
    return test


ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.org/group/thermal@sha256:" + "a" * 64
DATA_SHA = hashlib.sha256(demo.measurements_csv()).hexdigest()
DATA_SIZE = len(demo.measurements_csv())
WRONG_SHA = hashlib.sha256(b"another file").hexdigest()


def verify_notebook(*args, **environment) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "verify_notebook", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **environment})


@pytest.fixture
def demo_files(tmp_path):
    (tmp_path / "thermal.ipynb").write_bytes(demo.notebook())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "measurements.csv").write_bytes(demo.measurements_csv())
    return tmp_path


@needs_sandbox
def test_the_demo_notebook_with_its_data_reproduces(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("verdict: reproduced")
    assert "cell   1: identical" in result.stdout


@needs_sandbox
def test_json_output_carries_the_per_cell_report(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", f"{demo_files / 'data'}=data", "--json")

    report = json.loads(result.stdout)
    assert report["verdict"] == "reproduced"
    assert [cell["status"] for cell in report["cells"]] == ["identical", "identical"]
    assert report["environment"]["runner"] == "local"


@needs_sandbox
def test_without_its_data_the_run_completes_with_a_failing_verdict_and_exit_0(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb")

    assert result.returncode == 0
    assert result.stdout.startswith("verdict: execution_failed")
    assert "FileNotFoundError" in result.stdout


@needs_sandbox
def test_a_notebook_that_attacks_the_runner_gets_an_honest_verdict(tmp_path):
    """It came out "reproduced, all cells reproduced" when its child could overwrite the driver's results."""
    (tmp_path / "forged.ipynb").write_text(forging_notebook("forged.ipynb"))

    result = verify_notebook(tmp_path / "forged.ipynb", "--json")

    report = json.loads(result.stdout)
    assert report["verdict"] == "execution_failed", report
    assert report["message"] == "Cell 2 raised RuntimeError: this notebook does not run"
    assert report["cells"][1]["status"] == "differs"  # the fresh random number, not the claimed one
    assert CLAIMED_RANDOM_NUMBER not in report["cells"][1]["outputs"][0]["actual"]


@needs_sandbox
def test_with_the_image_runner_but_no_image_it_runs_in_the_kernel_environment(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data", "--json", RUNNER="image")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["environment"]["runner"] == "local"


def test_an_image_that_cannot_be_pulled_is_a_one_line_error_not_a_verdict(demo_files):
    unreachable = "127.0.0.1:9/nbarchive/none@sha256:" + "0" * 64  # the discard port: nothing answers there

    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data", "--image", unreachable,
                             RUNNER="image", IMAGE_INSECURE_REGISTRIES="127.0.0.1:9")

    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("CommandError: ")
    assert "verdict" not in result.stdout


def test_a_missing_file_is_a_one_line_error(tmp_path):
    result = verify_notebook(tmp_path / "nope.ipynb")

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"CommandError: No notebook file at {tmp_path / 'nope.ipynb'}."]


def test_a_data_target_outside_the_working_directory_is_refused(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", f"{demo_files / 'data'}=../escape")

    assert result.returncode != 0
    assert "inside the working directory" in result.stderr


# --- the submission's inputs: image and data references ----------------------------------------------------------


@needs_sandbox
def test_a_reference_that_verifies_is_staged_and_the_image_recorded(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data", "--image", IMAGE,
                             "--reference", f"data/measurements.csv={DATA_SHA}:{DATA_SIZE}", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "reproduced"
    assert report["container_image"] == IMAGE
    [staged] = report["staged_references"]
    assert (staged["label"], staged["sha256"], staged["size"]) == (
        "data reference 1 (data/measurements.csv)", DATA_SHA, DATA_SIZE)


def test_a_checksum_mismatch_fails_the_run_with_the_message_a_submission_gets(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data",
                             "--reference", f"data/measurements.csv={WRONG_SHA}")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "verdict: execution_failed",
        f"data reference 1 (data/measurements.csv): sha256 is {DATA_SHA} but the reference says {WRONG_SHA}; the "
        "file changed at the source or the checksum is wrong.",
    ]


def test_a_wrong_size_fails_the_run_as_staging_would(demo_files):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data",
                             "--reference", f"data/measurements.csv={DATA_SHA}:{DATA_SIZE + 1}")

    assert result.stdout.splitlines()[:2] == [
        "verdict: execution_failed",
        f"data reference 1 (data/measurements.csv): the file has the right sha256 but is {DATA_SIZE} bytes, not the "
        f"declared {DATA_SIZE + 1}; correct the declared size.",
    ]


def test_a_references_file_without_kind_checks_the_data_file_at_its_target(demo_files):
    references = demo_files / "references.json"
    references.write_text(json.dumps([{"target_path": "data/measurements.csv", "sha256": WRONG_SHA}]))

    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data", "--references", references)

    assert result.stdout.startswith("verdict: execution_failed\ndata reference 1 (data/measurements.csv): sha256 is ")


@pytest.mark.parametrize(("arguments", "error"), [
    (["--image", "python:3.11"], "CommandError: --image python:3.11: Pin the image by digest, e.g. "
                                 "registry.example.org/group/image@sha256:<64 hex>."),
    (["--image", "registry.example.org/x@sha256:abc"], "CommandError: --image registry.example.org/x@sha256:abc: "
                                                       "Enter the image as registry/name@sha256:<64 lower-case hex"),
    (["--reference", "data/measurements.csv"], "CommandError: --reference data/measurements.csv: write TARGET=SHA256"),
    (["--reference", f"other.csv={DATA_SHA}"], "CommandError: --reference other.csv=" + DATA_SHA + ": no --data file "
                                               "is placed at other.csv; give it with --data PATH=other.csv."),
    (["--reference", f"../x.csv={DATA_SHA}"], "CommandError: --reference ../x.csv=" + DATA_SHA + ": the target must "
                                              "be a relative path inside the working directory."),
])
def test_bad_input_is_one_line_and_a_non_zero_exit(demo_files, arguments, error):
    result = verify_notebook(demo_files / "thermal.ipynb", "--data", demo_files / "data", *arguments)

    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(error)


@pytest.mark.parametrize(("content", "error"), [
    ("{not json", "it is not valid JSON (Expecting property name enclosed in double quotes"),
    ('{"target_path": "a"}', "give a JSON list of objects, as the API's data_references."),
    (json.dumps([{"kind": "url", "identifier": "https://127.0.0.1/a.csv", "target_path": "a.csv",
                  "sha256": DATA_SHA, "size": 3}]),
     "data_references[0].identifier: '127.0.0.1' resolves to 127.0.0.1, a loopback address"),
    (json.dumps([{"kind": "url", "identifier": "https://data.example/a.csv", "target_path": "a.csv"}]),
     "data_references[0].sha256: Required for this kind of reference."),
])
def test_a_bad_references_file_is_one_line_as_the_api_would_say_it(demo_files, content, error):
    references = demo_files / "references.json"
    references.write_text(content)

    result = verify_notebook(demo_files / "thermal.ipynb", "--references", references)

    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"CommandError: --references {references}: {error}")


# In-process, to answer DNS: a url reference goes through the SSRF-guarded fetcher of staging.


def call_verify_notebook(*args) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("verify_notebook", *map(str, args), stdout=out)
    return out.getvalue()


@pytest.fixture
def data_example_is_loopback(monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "data.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_url_reference_to_a_private_address_is_refused_by_staging(demo_files, data_example_is_loopback, settings,
                                                                    tmp_path):
    settings.STAGING_ALLOWED_NETWORKS = []
    settings.STAGING_CACHE_DIR = str(tmp_path / "cache")
    references = demo_files / "references.json"
    references.write_text(json.dumps([{"kind": "url", "identifier": "https://data.example/m.csv",
                                       "target_path": "data/measurements.csv", "sha256": DATA_SHA,
                                       "size": DATA_SIZE}]))

    output = call_verify_notebook(demo_files / "thermal.ipynb", "--references", references)

    assert output.splitlines()[:2] == [
        "verdict: execution_failed",
        "data reference 1 (https://data.example/m.csv): 'data.example' resolves to 127.0.0.1, a loopback address; "
        "data is only fetched from public internet addresses.",
    ]


@needs_sandbox
def test_a_url_reference_is_fetched_checked_and_staged(demo_files, data_example_is_loopback, settings, tmp_path):
    import trustme

    from tests.fakes.https_server import LoopbackHTTPSServer

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings.STAGING_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.STAGING_CA_BUNDLE = str(tmp_path / "ca.pem")
    settings.STAGING_CACHE_DIR = str(tmp_path / "cache")
    with LoopbackHTTPSServer(ca) as server:
        server.add_file("/m.csv", demo.measurements_csv(), content_type="text/csv")
        url = server.url("/m.csv", host="data.example")
        references = demo_files / "references.json"
        references.write_text(json.dumps([{"kind": "url", "identifier": url, "target_path": "data/measurements.csv",
                                           "sha256": DATA_SHA, "size": DATA_SIZE}]))

        report = json.loads(call_verify_notebook(demo_files / "thermal.ipynb", "--references", references, "--json"))

    assert report["verdict"] == "reproduced", report["message"]
    assert report["staged_references"][0]["source_url"] == url
    assert len(server.requests_to("/m.csv")) == 1


@pytest.mark.django_db
def test_a_repository_file_reference_whose_version_was_withdrawn_is_refused(demo_files, user, settings, tmp_path):
    from django.core.management.base import CommandError
    from django.utils import timezone

    from repository.models import Version
    from repository.services.drafts import record_create
    from tests.factories import upload

    settings.STAGING_CACHE_DIR = str(tmp_path / "cache")
    source = record_create(owner=user, metadata={"title": "Data"})
    upload(source, user, "measurements.csv", demo.measurements_csv())
    Version.objects.filter(pk=source.pk).update(state=Version.State.PUBLISHED)
    references = demo_files / "references.json"
    identifier = f"{source.record.public_id}/v1/measurements.csv"
    references.write_text(json.dumps([{"kind": "repository_file", "identifier": identifier,
                                       "target_path": "data/measurements.csv"}]))
    Version.objects.filter(pk=source.pk).update(state=Version.State.WITHDRAWN, withdrawn_at=timezone.now())

    with pytest.raises(CommandError) as raised:
        call_verify_notebook(demo_files / "thermal.ipynb", "--references", references)

    assert str(raised.value) == (
        f"--references {references}: data_references[0].identifier: Version 1 of record {source.record.public_id} "
        "was withdrawn; its files can no longer be referenced. Reference another version or another copy of the data.")
