"""What the primary-storage tests share: playing the promote worker and looking into storage."""

import base64
import hashlib

import pytest

from repository.services.drafts import record_create


@pytest.fixture
def promote_inline(monkeypatch):
    """Queued blob_promote tasks run at once in this process, as the worker would run them (Celery's `apply`).
    Callbacks queued with transaction.on_commit still need django_capture_on_commit_callbacks(execute=True)."""
    from repository import tasks

    ran = []

    def run(blob_pk):
        ran.append(blob_pk)
        return tasks.blob_promote_task.apply(args=[blob_pk]).get()

    monkeypatch.setattr(tasks.blob_promote_task, "delay", run)
    return ran


def content_key(data: bytes) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    return f"blobs/sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def draft(user, **metadata):
    return record_create(owner=user, metadata={"title": "Storage test", **metadata})


def local_files(root) -> dict[str, bytes]:
    """Every file under a local storage directory, by its key."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def s3_keys(client, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def small_parts():
    from boto3.s3.transfer import TransferConfig

    size = 5 * 1024 * 1024
    return TransferConfig(multipart_threshold=size, multipart_chunksize=size, max_concurrency=2)
