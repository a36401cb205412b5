"""Uploads land at a temporary key and move to their content address after the commit; S3 checks SHA-256 on the way."""

import base64
import hashlib
import io
import os

import pytest

from repository import storage
from repository.errors import StorageChecksumMismatch
from repository.integrations import s3
from repository.models import Blob, VersionFile
from repository.services.blobs import blob_promote
from tests.factories import upload
from tests.repository.storage.helpers import (  # noqa: F401 (fixture)
    b64_sha256,
    content_key,
    draft,
    local_files,
    promote_inline,
    s3_keys,
    small_parts,
)

pytestmark = pytest.mark.django_db


def upload_through_api(api, data: bytes, path: str = "data/table.bin"):
    record_id = api.post("/api/records", {}, format="json").json()["id"]
    response = api.put(f"/api/records/{record_id}/draft/files/{path}", data, content_type="application/octet-stream")
    assert response.status_code == 201, response.content
    return record_id


# --- local directory ---------------------------------------------------------------------------------------------

@pytest.mark.usefixtures("promote_inline")
def test_a_local_upload_ends_at_its_content_address(api, local_blob_storage, django_capture_on_commit_callbacks):
    data = b"x,y\n1,2\n" * 5000

    with django_capture_on_commit_callbacks(execute=True):
        upload_through_api(api, data)

    blob = Blob.objects.get()
    assert blob.storage_key == content_key(data)
    assert local_files(local_blob_storage) == {content_key(data): data}  # the temporary file is gone


def test_until_it_is_moved_the_blob_is_served_from_its_temporary_key(api, local_blob_storage):
    data = b"not moved yet" * 100

    record_id = upload_through_api(api, data, "a.bin")  # no commit callbacks: the promote task never ran

    blob = Blob.objects.get()
    assert storage.is_temporary_key(blob.storage_key)
    download = api.get(f"/api/records/{record_id}/draft/files/a.bin")
    assert b"".join(download.streaming_content) == data


@pytest.mark.usefixtures("promote_inline")
def test_the_same_bytes_twice_are_one_blob_and_leave_no_temporary_object(user, local_blob_storage,
                                                                          django_capture_on_commit_callbacks):
    version = draft(user)
    data = b"identical" * 1000

    with django_capture_on_commit_callbacks(execute=True):
        upload(version, user, "first.bin", data)
    with django_capture_on_commit_callbacks(execute=True):
        upload(version, user, "second.bin", data)

    assert Blob.objects.count() == 1
    assert set(VersionFile.objects.values_list("blob__storage_key", flat=True)) == {content_key(data)}
    assert local_files(local_blob_storage) == {content_key(data): data}


def test_a_blob_from_before_content_addressing_keeps_its_key_and_is_reused(user, local_blob_storage,
                                                                          django_capture_on_commit_callbacks):
    data = b"stored long ago"
    old_key = "blobs/ab/cd/0123456789abcdef0123456789abcdef"
    (local_blob_storage / "blobs/ab/cd").mkdir(parents=True)
    (local_blob_storage / old_key).write_bytes(data)
    sha256 = hashlib.sha256(data).hexdigest()
    Blob.objects.create(sha256=sha256, md5=hashlib.md5(data).hexdigest(), size=len(data), storage_key=old_key)

    version = draft(user)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        upload(version, user, "old.bin", data)

    assert VersionFile.objects.get().blob.storage_key == old_key
    assert local_files(local_blob_storage) == {old_key: data}
    assert callbacks == []  # nothing to move


def test_an_existing_object_at_the_content_address_is_reused_not_overwritten(local_blob_storage):
    data = b"already there"
    target = local_blob_storage / content_key(data)
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    before = os.stat(target)
    stored = storage.store_stream(io.BytesIO(data), max_size=100)

    key = storage.place_at_content_key(stored.storage_key, sha256=stored.sha256, size=stored.size)

    assert key == content_key(data)
    after = os.stat(target)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_other_bytes_at_the_content_address_are_an_error_and_stay_untouched(local_blob_storage):
    data = b"the real bytes"
    target = local_blob_storage / content_key(data)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"something else")
    stored = storage.store_stream(io.BytesIO(data), max_size=100)

    with pytest.raises(StorageChecksumMismatch):
        storage.place_at_content_key(stored.storage_key, sha256=stored.sha256, size=stored.size)

    assert target.read_bytes() == b"something else"


# --- S3 ----------------------------------------------------------------------------------------------------------

@pytest.mark.s3
@pytest.mark.usefixtures("promote_inline")
def test_an_s3_upload_ends_at_its_content_address_with_a_sha256_checksum(api, s3_blob_storage,
                                                                         django_capture_on_commit_callbacks):
    client, bucket = s3_blob_storage
    data = os.urandom(300_000)  # one PUT

    with django_capture_on_commit_callbacks(execute=True):
        upload_through_api(api, data)

    assert Blob.objects.get().storage_key == content_key(data)
    assert s3_keys(client, bucket) == [content_key(data)]
    head = client.head_object(Bucket=bucket, Key=content_key(data), ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == b64_sha256(data)


@pytest.mark.s3
def test_a_multipart_upload_is_checked_against_its_composite_checksum_then_copied_whole(api, s3_blob_storage,
                                                                                       settings):
    client, bucket = s3_blob_storage
    settings.STORAGES["blobs"]["OPTIONS"]["transfer_config"] = small_parts()
    data = os.urandom(12 * 1024 * 1024 + 17)  # three parts of 5 MiB, the last one short

    upload_through_api(api, data)  # the promote task is queued at commit, which never comes here

    blob = Blob.objects.get()
    assert storage.is_temporary_key(blob.storage_key)
    parts = [data[i:i + 5 * 1024 * 1024] for i in range(0, len(data), 5 * 1024 * 1024)]
    composite = base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest())
    head = client.head_object(Bucket=bucket, Key=blob.storage_key, ChecksumMode="ENABLED", PartNumber=1)
    assert head["PartsCount"] == 3
    assert client.head_object(Bucket=bucket, Key=blob.storage_key, ChecksumMode="ENABLED")[
        "ChecksumSHA256"].split("-")[0] == composite.decode()

    assert blob_promote(blob_pk=blob.pk) == content_key(data)

    assert s3_keys(client, bucket) == [content_key(data)]
    head = client.head_object(Bucket=bucket, Key=content_key(data), ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == b64_sha256(data)  # CopyObject made S3 compute the whole object's SHA-256


@pytest.mark.s3
def test_over_the_single_copy_limit_the_copy_is_multipart_and_checked(user, s3_blob_storage, settings, monkeypatch):
    client, bucket = s3_blob_storage
    settings.STORAGES["blobs"]["OPTIONS"]["transfer_config"] = small_parts()
    monkeypatch.setattr(s3.objects, "SINGLE_COPY_MAX", 6 * 1024 * 1024)  # stands in for CopyObject's 5 GiB
    data = os.urandom(11 * 1024 * 1024)
    upload(draft(user), user, "big.bin", data)
    blob = Blob.objects.get()

    assert blob_promote(blob_pk=blob.pk) == content_key(data)

    assert s3_keys(client, bucket) == [content_key(data)]
    assert client.get_object(Bucket=bucket, Key=content_key(data))["Body"].read() == data


@pytest.mark.s3
@pytest.mark.usefixtures("promote_inline")
def test_the_same_bytes_twice_on_s3_leave_one_object(user, s3_blob_storage, django_capture_on_commit_callbacks):
    client, bucket = s3_blob_storage
    version = draft(user)
    data = os.urandom(50_000)

    with django_capture_on_commit_callbacks(execute=True):
        upload(version, user, "a.bin", data)
    with django_capture_on_commit_callbacks(execute=True):
        upload(version, user, "b.bin", data)

    assert Blob.objects.count() == 1
    assert s3_keys(client, bucket) == [content_key(data)]


class _Tampering:
    """Hands boto3 other bytes than the HashingReader hashed: what S3 stores is not what was streamed."""

    def __init__(self, reader):
        self._reader = reader

    def read(self, size=-1):
        data = self._reader.read(size)
        return data[:-1] + bytes([data[-1] ^ 1]) if data else data


@pytest.mark.s3
@pytest.mark.parametrize("size", [100_000, 12 * 1024 * 1024], ids=["single PUT", "multipart"])
def test_bytes_stored_differently_from_those_streamed_are_refused_and_not_kept(api, s3_blob_storage, settings,
                                                                              monkeypatch, size):
    client, bucket = s3_blob_storage
    settings.STORAGES["blobs"]["OPTIONS"]["transfer_config"] = small_parts()
    real_upload = s3.upload
    monkeypatch.setattr(s3, "upload", lambda st, key, reader: real_upload(st, key, _Tampering(reader)))
    record_id = api.post("/api/records", {}, format="json").json()["id"]

    response = api.put(f"/api/records/{record_id}/draft/files/x.bin", os.urandom(size),
                       content_type="application/octet-stream")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "storage_checksum_mismatch"
    assert (Blob.objects.count(), VersionFile.objects.count()) == (0, 0)
    assert s3_keys(client, bucket) == []


@pytest.mark.s3
def test_a_copy_with_another_checksum_is_removed_and_the_blob_stays_at_its_checked_temporary_key(user,
                                                                                                  s3_blob_storage,
                                                                                                  monkeypatch):
    client, bucket = s3_blob_storage
    data = os.urandom(10_000)
    upload(draft(user), user, "a.bin", data)
    blob = Blob.objects.get()
    real_copy = s3.copy_new
    monkeypatch.setattr(s3, "copy_new", lambda *a, **k: (real_copy(*a, **k), "AAAA")[1])

    with pytest.raises(StorageChecksumMismatch):
        blob_promote(blob_pk=blob.pk)

    blob.refresh_from_db()
    assert storage.is_temporary_key(blob.storage_key)
    assert s3_keys(client, bucket) == [blob.storage_key]


@pytest.mark.s3
def test_s3_never_overwrites_a_content_address(s3_blob_storage):
    client, bucket = s3_blob_storage
    data = b"the real bytes"
    client.put_object(Bucket=bucket, Key=content_key(data), Body=b"other bytes, same length")
    stored = storage.store_stream(io.BytesIO(data), max_size=100)

    with pytest.raises(StorageChecksumMismatch):
        storage.place_at_content_key(stored.storage_key, sha256=stored.sha256, size=stored.size)

    assert client.get_object(Bucket=bucket, Key=content_key(data))["Body"].read() == b"other bytes, same length"
