"""The S3 door (repository/integrations/s3.py): the SDK's errors come out as ours, and settings stay free of boto3."""

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from repository import settings as project_settings
from repository import storage
from repository.errors import ObjectMissing, StorageError
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
