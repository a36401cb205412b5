"""The `nbarchive` command end to end: a real subprocess against a live server, on a local directory and on S3
(moto, checking part checksums as S3 does). A counting forwarder (tests/fakes/byte_counter.py) in front of where
the parts go is the independent account of what a resumed upload sent again."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from repository import upload_storage
from repository.errors import ObjectMissing
from repository.models import Upload, Version
from repository.services.tokens import token_create
from tests.factories import IMAGE, UserFactory, accept, notebook_bytes, sync_pending
from tests.fakes.byte_counter import ByteCounter

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def server(request, live_server, settings, eager_tasks):
    """The live server's URL for the client, and the forwarder the parts pass through: in front of the app for a
    local directory, in front of the S3 endpoint the app signs part URLs for on S3."""
    port = int(live_server.url.rsplit(":", 1)[1])
    if request.param == "local":
        with ByteCounter(port) as counter:
            yield {"url": counter.url, "parts": counter}
        return
    endpoint = request.getfixturevalue("s3_checking_endpoint")
    bucket = f"cli-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    with ByteCounter(int(endpoint.rsplit(":", 1)[1])) as counter:
        settings.STORAGES = {**settings.STORAGES, "blobs": {
            "BACKEND": "repository.integrations.s3.S3Storage",
            "OPTIONS": {"bucket_name": bucket, "endpoint_url": counter.url, "region_name": "us-east-1",
                        "access_key": "testing", "secret_key": "testing", "file_overwrite": True}}}
        yield {"url": live_server.url, "parts": counter}


@pytest.fixture
def owner():
    return UserFactory()


@pytest.fixture
def cli(server, owner, tmp_path):
    _, token = token_create(user=owner, name="cli")
    env = {**os.environ, "NBARCHIVE_URL": server["url"], "NBARCHIVE_TOKEN": token,
           "NBARCHIVE_CACHE_DIR": str(tmp_path / "cache"),
           # the client as installed with the project, run from the test's folder
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

    def run(*args, check=True, **kwargs):
        result = subprocess.run([sys.executable, "-m", "nbarchive_client", *args], cwd=kwargs.pop("cwd", tmp_path),
                                env={**env, **kwargs.pop("env", {})}, capture_output=True, text=True, timeout=300)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def start(*args):
        return subprocess.Popen([sys.executable, "-m", "nbarchive_client", *args], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    run.start = start
    return run


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


METADATA = {"title": "Thermal expansion", "description": "A notebook", "license": "CC-BY-4.0",
            "creators": [{"name": "Doe, Jane"}], "container_image": IMAGE}


def test_new_upload_status_submit_and_download(cli, tmp_path, owner, no_queue):
    write(tmp_path / "meta.json", json.dumps(METADATA).encode())
    files = {"analysis.ipynb": notebook_bytes(), "results/a.csv": b"x,y\n1,2\n",
             "results/deep/b.bin": os.urandom(9 * MIB + 5)}
    for path, data in files.items():
        write(tmp_path / "work" / path, data)
    write(tmp_path / "extra.txt", b"extra")

    record = cli("new", "--metadata", "meta.json").stdout.strip()
    cli("upload", record, "work/analysis.ipynb", "work/results", cwd=tmp_path)
    cli("upload", record, "extra.txt", "--to", "data")

    status = cli("status", record).stdout
    assert f"record {record}, version 1: draft" in status
    for path, data in {**files, "data/extra.txt": b"extra"}.items():
        assert f"  {path}  {len(data)} bytes  ready" in status
    assert "verification: not run" in status and "review: (not submitted)" in status

    cli("download", record, "--to", "draft-copy")
    for path, data in files.items():
        assert (tmp_path / "draft-copy" / path).read_bytes() == data

    submitted = cli("submit", record).stdout
    assert submitted.strip() == f"{record}: version 1 is in_review"
    assert "version 1: in_review" in cli("status", record).stdout

    accept(Version.objects.get(record__public_id=record), owner)
    sync_pending()
    cli("download", record, "--version", "1", "--to", "published")
    for path, data in {**files, "data/extra.txt": b"extra"}.items():
        assert (tmp_path / "published" / path).read_bytes() == data


def _wait_for_parts(record: str, count: int, process: subprocess.Popen) -> list:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        upload = Upload.objects.filter(version__record__public_id=record).first()
        try:
            parts = upload_storage.received_parts(upload.storage_key, upload.multipart_id) if upload else []
        except ObjectMissing:  # S3: the row is there, its multipart upload not begun yet
            parts = []
        if len(parts) >= count:
            return parts
        time.sleep(0.02)
    raise AssertionError("the upload did not get under way")


def test_a_killed_upload_resumes_and_sends_only_the_missing_parts(cli, server, tmp_path):
    data = os.urandom(48 * MIB)  # six parts of 8 MiB
    write(tmp_path / "big.bin", data)
    record = cli("new").stdout.strip()
    counter = server["parts"]
    counter.rate = 12 * MIB  # about 4 s in all, so the kill comes mid-way

    client = cli.start("-q", "upload", record, "big.bin", "--jobs", "1")
    _wait_for_parts(record, 3, client)
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=10)
    upload = Upload.objects.get(version__record__public_id=record)
    held = upload_storage.received_parts(upload.storage_key, upload.multipart_id)
    held_bytes = sum(part.size for part in held)
    counter.rate = None
    counter.reset()

    cli("-q", "upload", record, "big.bin")

    sent_again = counter.reset()
    assert 3 <= len(held) < 6
    # The missing parts, plus requests' headers and the API's small answers; none of the parts held was sent again.
    assert len(data) - held_bytes <= sent_again < len(data) - held_bytes + MIB
    upload.refresh_from_db()
    assert upload.state == Upload.State.READY and upload.sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_changed_since_its_upload_began_is_refused_until_restarted(cli, server, tmp_path):
    data = os.urandom(24 * MIB)
    path = write(tmp_path / "big.bin", data)
    record = cli("new").stdout.strip()
    server["parts"].rate = 8 * MIB
    client = cli.start("-q", "upload", record, "big.bin", "--jobs", "1")
    _wait_for_parts(record, 1, client)
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=10)
    server["parts"].rate = None
    path.write_bytes(data[:-1] + b"!")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))

    refused = cli("-q", "upload", record, "big.bin", check=False)

    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        "nbarchive: error: big.bin changed since its upload to big.bin began; run again with --restart to discard"
        " the earlier upload and start over"]
    cli("-q", "upload", record, "big.bin", "--restart")
    upload = Upload.objects.get(version__record__public_id=record)
    assert upload.state == Upload.State.READY and upload.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_errors_are_one_line_with_a_non_zero_exit(cli, tmp_path):
    bad_token = cli("-q", "status", "whatever", check=False, env={"NBARCHIVE_TOKEN": "not-a-token"})
    unknown = cli("-q", "upload", "nope", "meta.json", check=False)
    write(tmp_path / "x.bin", b"x")
    record = cli("new").stdout.strip()
    twice = [cli.start("-q", "upload", record, "x.bin") for _ in range(2)]
    outcomes = sorted((p.wait(timeout=60), p.stderr.read().decode()) for p in twice)

    assert bad_token.returncode == 1 and bad_token.stderr.count("\n") == 1
    assert bad_token.stderr.startswith("nbarchive: error: the server refused the token (401)")
    assert unknown.returncode == 1
    assert unknown.stderr == "nbarchive: error: no draft of record 'nope' that you can see (unknown record, or not " \
                             "yours)\n"
    # Two clients at once on the same path: one uploads, the other is told why it may not.
    assert outcomes[0] == (0, "")
    assert outcomes[1][0] == 1 and ("409" in outcomes[1][1] or "already has a file" in outcomes[1][1])


def test_the_client_does_not_import_django():
    probe = "import sys, nbarchive_client.cli, nbarchive_client.transfer; print(sorted(m for m in sys.modules " \
            "if m.split('.')[0] in ('django', 'repository', 'rest_framework')))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_part_urls_that_expire_while_waiting_their_turn_are_signed_again(cli, server, tmp_path, settings):
    # moto does not enforce a presigned URL's expiry, so on S3 this only shows that nothing else breaks; the local
    # directory's part URLs do expire (and real S3 answers 403 "Request has expired", which the client handles too).
    settings.S3_PRESIGNED_TTL = 1
    data = os.urandom(24 * MIB)  # three parts, sent one at a time at 8 MiB/s: the later URLs expire
    write(tmp_path / "slow.bin", data)
    record = cli("new").stdout.strip()
    server["parts"].rate = 8 * MIB

    cli("-q", "upload", record, "slow.bin", "--jobs", "1")

    upload = Upload.objects.get(version__record__public_id=record)
    assert upload.state == Upload.State.READY and upload.sha256 == hashlib.sha256(data).hexdigest()
