"""The S3 door (repository/integrations/s3/): the SDK's errors come out as ours, and settings stay free of boto3."""

import ast
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from botocore.stub import Stubber

from repository import settings as project_settings
from repository import storage
from repository.errors import (
    BucketMissing,
    ObjectArchived,
    ObjectExists,
    ObjectMissing,
    StorageError,
    StorageRefused,
)
from repository.integrations import s3

pytestmark = pytest.mark.s3

UNREACHABLE = "http://127.0.0.1:9"


@pytest.fixture
def unreachable_s3(settings):
    """The "blobs" alias as production configures it, pointed at a port where nothing answers."""
    config = project_settings._s3_storage("nowhere")
    config["OPTIONS"].update(endpoint_url=UNREACHABLE, access_key="x", secret_key="y")
    settings.STORAGES = {**settings.STORAGES, "blobs": config}


@pytest.mark.parametrize("operation", [
    lambda: storage.object_exists("blobs/a"),
    lambda: storage.open_blob("blobs/a"),
    lambda: storage.open_blob_stream("blobs/a"),
    lambda: list(storage.temporary_objects_older_than(datetime.now(UTC))),
    lambda: storage.abort_stale_uploads(datetime.now(UTC)),
], ids=["exists", "open", "open_stream", "list", "abort_uploads"])
def test_s3_unreachable_is_our_storage_error_with_the_sdks_error_as_its_cause(unreachable_s3, operation):
    with pytest.raises(StorageError) as raised:
        operation()

    assert isinstance(raised.value.__cause__, BotoCoreError | ClientError)
    assert raised.value.code == "storage_error" and raised.value.status == 503
    assert isinstance(raised.value, storage.STORAGE_ERRORS)


def test_a_missing_object_is_file_not_found_as_with_a_directory_and_object_missing_elsewhere(s3_blob_storage):
    with pytest.raises(FileNotFoundError):
        storage.open_blob("blobs/none")
    with pytest.raises(FileNotFoundError):
        storage.open_blob_stream("blobs/none")
    assert storage.object_exists("blobs/none") is False
    assert s3.object_info(storage.blob_storage(), "blobs/none") is None

    with pytest.raises(ObjectMissing) as raised:
        s3.copy_new(storage.blob_storage(), "blobs/none", "blobs/copy", size=1)
    assert "blobs/none" in raised.value.detail and raised.value.code == "object_missing"


def test_a_stream_reads_the_object_front_to_back(s3_blob_storage):
    client, bucket = s3_blob_storage
    client.put_object(Bucket=bucket, Key="blobs/x", Body=b"0123456789")

    with storage.open_blob_stream("blobs/x") as stream:
        buffer = bytearray(4)
        assert stream.readinto(buffer) == 4 and bytes(buffer) == b"0123"
        assert stream.read(3) == b"456" and stream.read() == b"789" and stream.read(1) == b""


def test_the_storage_builds_its_transfer_settings_from_plain_numbers(settings):
    options = project_settings._s3_storage("b")["OPTIONS"]

    config = s3.S3Storage(**options).transfer_config

    assert config.multipart_chunksize == config.multipart_threshold == project_settings.S3_MULTIPART_CHUNK_SIZE
    assert config.max_request_concurrency == project_settings.S3_MULTIPART_CONCURRENCY
    assert config.max_in_memory_upload_chunks == project_settings.S3_MULTIPART_CONCURRENCY + 2


def test_settings_do_not_import_the_sdk():
    code = "import sys, repository.settings; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
           "('boto3', 'botocore', 's3transfer')))"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={"S3_BUCKET": "b", "BACKUP_S3_BUCKET": "c", "PATH": ""},
                            cwd=project_settings.BASE_DIR)

    assert result.stdout.strip() == "[]"



def _door(endpoint: str, name: str) -> s3.Bucket:
    return s3.connect(bucket=name, endpoint_url=endpoint, region_name="us-east-1", access_key="testing",
                      secret_key="testing", part_size=5 * 1024 * 1024, concurrency=2)


@pytest.fixture
def door(s3_endpoint):
    """A fresh bucket on the loopback S3 server, reached through the door: objects "a" and "cold" (in
    DEEP_ARCHIVE, not restored) in it."""
    name = f"door-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="a", Body=b"abc")
    client.put_object(Bucket=name, Key="cold", Body=b"zzz", StorageClass="DEEP_ARCHIVE")
    return _door(s3_endpoint, name)


@pytest.mark.parametrize(("operation", "kind", "code"), [
    (lambda door: door.head("none"), ObjectMissing, "object_missing"),
    (lambda door: door.get("cold").read(), ObjectArchived, "object_archived"),
    (lambda door: door.get("a", byte_range=(10, 20)), StorageRefused, "storage_refused"),
], ids=["missing", "archived", "refused"])
def test_what_s3_answered_comes_out_as_our_error_of_that_kind(door, operation, kind, code):
    with pytest.raises(kind) as raised:
        operation(door)

    assert type(raised.value) is kind and raised.value.code == code
    assert isinstance(raised.value.__cause__, ClientError)
    assert raised.value.answer and raised.value.answer in raised.value.detail


def test_a_missing_bucket_is_bucket_missing_whatever_asked(s3_endpoint):
    nowhere = _door(s3_endpoint, f"none-{uuid.uuid4().hex[:12]}")

    for operation in (nowhere.check, lambda: nowhere.put("a", b"1"), lambda: nowhere.get("a")):
        with pytest.raises(BucketMissing) as raised:
            operation()
        assert isinstance(raised.value, ObjectMissing) and raised.value.code == "bucket_missing"


def test_an_endpoint_that_does_not_answer_is_a_plain_storage_error_saying_so():
    unreachable = s3.connect(bucket="b", endpoint_url=UNREACHABLE, region_name="us-east-1", access_key="x",
                             secret_key="y", part_size=5 * 1024 * 1024, concurrency=2)

    with pytest.raises(StorageError) as raised:
        unreachable.check()

    assert type(raised.value) is StorageError and isinstance(raised.value.__cause__, BotoCoreError)
    assert raised.value.answer.startswith("Could not connect to the endpoint URL") and "\n" not in raised.value.answer


@pytest.fixture
def stubbed():
    """A bucket whose client answers from a script (botocore's Stubber), for answers moto never gives: it copies
    over an object despite If-None-Match, lets anyone in, and restores at once."""
    client = boto3.client("s3", endpoint_url=UNREACHABLE, region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="y")
    with Stubber(client) as stubber:
        yield s3.Bucket(client, "b", transfer=None), stubber


def test_a_copy_that_would_overwrite_is_object_exists(stubbed):
    bucket, stubber = stubbed
    stubber.add_client_error("copy_object", service_error_code="PreconditionFailed", http_status_code=412)

    with pytest.raises(ObjectExists) as raised:
        bucket.copy_if_absent("a", "b")

    assert raised.value.code == "object_exists" and "PreconditionFailed" in raised.value.detail


def test_a_refusal_of_s3_is_storage_refused(stubbed):
    bucket, stubber = stubbed
    stubber.add_client_error("head_bucket", service_error_code="AccessDenied", service_message="Access Denied",
                             http_status_code=403)

    with pytest.raises(StorageRefused) as raised:
        bucket.check()

    assert raised.value.answer == "AccessDenied: Access Denied" and raised.value.code == "storage_refused"


def test_asking_again_for_a_restore_under_way_is_no_error(stubbed):
    bucket, stubber = stubbed
    stubber.add_client_error("restore_object", service_error_code="RestoreAlreadyInProgress", http_status_code=409)
    stubber.add_client_error("restore_object", service_error_code="InvalidObjectState", http_status_code=403)

    bucket.request_restore("cold", days=1, tier="Bulk")
    with pytest.raises(ObjectArchived):
        bucket.request_restore("cold", days=1, tier="Bulk")
    stubber.assert_no_pending_responses()


_SDKS = ("boto3", "botocore", "s3transfer", "storages.backends.s3", "storages.utils")
_SDK_ERROR_NAMES = {"ClientError", "BotoCoreError", "Boto3Error", "S3UploadFailedError", "RetriesExceededError"}
_DOOR = Path("repository/integrations/s3/client.py")


def _production_modules():
    root = Path(project_settings.BASE_DIR)
    for package in ("repository", "moderation", "harvest"):
        for path in sorted((root / package).rglob("*.py")):
            yield path.relative_to(root), ast.parse(path.read_text(), filename=str(path))


def test_only_the_door_imports_the_s3_sdk_or_names_its_errors():
    importers, naming = set(), set()
    for path, tree in _production_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                modules = []
            if any(module == sdk or module.startswith(sdk + ".") for module in modules for sdk in _SDKS):
                importers.add(path)
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
            if name in _SDK_ERROR_NAMES:
                naming.add(path)

    assert importers == {_DOOR}
    assert naming == {_DOOR}
