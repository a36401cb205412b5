"""Direct, resumable uploads through the API: on S3 (moto, checking part checksums as S3 does) the parts go to
presigned URLs; on a local directory to the application's part URLs. The same client steps work for both."""

import base64
import hashlib
import os
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from repository.models import AuditEvent, Blob, Upload, VersionFile
from repository.services.blobs import blob_gc

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024
PART = 5 * MIB


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def parts_of(data: bytes, part_size: int = PART) -> list[bytes]:
    return [data[i:i + part_size] for i in range(0, len(data), part_size)]


@pytest.fixture(params=["local", "s3"])
def backend(request):
    """Each test runs on a local directory and on S3; returns (boto3 client, bucket) for S3, None for local."""
    if request.param == "s3":
        return request.getfixturevalue("s3_checking_blob_storage")
    return None


@pytest.fixture
def record_id(api):
    return api.post("/api/records", {}, format="json").json()["id"]


def start(api, record_id, data: bytes, path="data/big.bin", *, sha256=None, **extra):
    return api.post(f"/api/records/{record_id}/draft/uploads", {
        "path": path, "size": len(data), "sha256": sha256 or sha256_hex(data), "part_size": PART, **extra},
        format="json")


def sign(api, upload: dict, numbered: dict[int, bytes]) -> dict[int, dict]:
    response = api.post(upload["links"]["parts"], {"parts": [
        {"number": n, "sha256": sha256_b64(chunk)} for n, chunk in numbered.items()]}, format="json")
    assert response.status_code == 200, response.content
    return {target["number"]: target for target in response.json()}


def put_part(api, target: dict, data: bytes):
    """PUT a part where the server said, with the headers it said: S3 directly, or the app (its test client)."""
    url = urlsplit(target["url"])
    if url.hostname == "testserver":
        headers = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in target["headers"].items()}
        response = api.put(f"{url.path}?{url.query}", data, content_type="application/octet-stream", **headers)
        return response.status_code, response.content.decode()
    response = requests.put(target["url"], data=data, headers=target["headers"], timeout=30)
    return response.status_code, response.text


def upload_all(api, record_id, data: bytes, path="data/big.bin", **start_extra) -> dict:
    upload = start(api, record_id, data, path, **start_extra).json()
    chunks = dict(enumerate(parts_of(data), start=1))
    for number, target in sign(api, upload, chunks).items():
        status, text = put_part(api, target, chunks[number])
        assert status == 200, text
    return upload


def complete(api, upload, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(upload["links"]["complete"], format="json")
    return response


def direct_objects(backend, local_blob_storage) -> list[str]:
    if backend:
        client, bucket = backend
        return [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="uploads/direct/").get("Contents", [])]
    root = local_blob_storage / "uploads" / "direct"
    return [str(p) for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_a_direct_upload_becomes_a_file_once_its_checksum_is_confirmed(api, record_id, backend, eager_tasks,
                                                                       local_blob_storage,
                                                                       django_capture_on_commit_callbacks):
    data = os.urandom(2 * PART + 1234)

    answer = start(api, record_id, data, parts=[{"number": 1, "sha256": sha256_b64(data[:PART])}])
    assert answer.status_code == 201, answer.content
    upload = answer.json()
    assert (upload["state"], upload["part_size"], upload["part_count"]) == ("uploading", PART, 3)
    # The start already answers a URL for the part it was given; on S3 it is a presigned one, straight to the store.
    assert [t["number"] for t in upload["part_urls"]] == [1]
    assert ("X-Amz-Signature=" in upload["part_urls"][0]["url"]) == bool(backend)
    chunks = dict(enumerate(parts_of(data), start=1))
    for number, target in sign(api, upload, chunks).items():
        assert put_part(api, target, chunks[number])[0] == 200
    received = api.get(upload["links"]["self"]).json()["parts_received"]
    assert [(p["number"], p["size"]) for p in received] == [(1, PART), (2, PART), (3, 1234)]

    response = complete(api, upload, django_capture_on_commit_callbacks)

    assert response.status_code == 202 and response.json()["state"] == "checking"
    done = api.get(upload["links"]["self"]).json()
    assert done["state"] == "ready" and done["md5"] == hashlib.md5(data).hexdigest()
    files = api.get(f"/api/records/{record_id}/draft/files").json()
    assert [(f["path"], f["size"], f["sha256"], f["state"]) for f in files] == [
        ("data/big.bin", len(data), sha256_hex(data), "ready")]
    downloaded = api.get(f"/api/records/{record_id}/draft/files/data/big.bin")
    if backend:
        downloaded = requests.get(downloaded["Location"], timeout=30)
        assert downloaded.content == data
        client, bucket = backend
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    else:
        assert b"".join(downloaded.streaming_content) == data
    assert direct_objects(backend, local_blob_storage) == []  # moved to its content address


def test_a_part_with_a_wrong_checksum_is_refused_by_the_store(api, record_id, backend):
    data = os.urandom(PART + 10)
    upload = start(api, record_id, data).json()
    target = sign(api, upload, {1: data[:PART]})[1]

    status, text = put_part(api, target, b"\0" + data[1:PART])

    assert status == 400 and "BadDigest" in text
    assert api.get(upload["links"]["self"]).json()["parts_received"] == []
    incomplete = api.post(upload["links"]["complete"], format="json")
    assert incomplete.status_code == 400 and "missing parts 1, 2" in incomplete.json()["detail"]


def test_a_declared_sha256_that_does_not_match_deletes_the_object_and_adds_no_file(
        api, record_id, backend, eager_tasks, local_blob_storage, django_capture_on_commit_callbacks):
    data = os.urandom(PART + 99)
    upload = upload_all(api, record_id, data, "results/table.csv", sha256=sha256_hex(b"something else"))

    complete(api, upload, django_capture_on_commit_callbacks)

    failed = api.get(upload["links"]["self"]).json()
    assert failed["state"] == "failed"
    assert failed["message"].startswith("results/table.csv: the bytes stored")
    listed = api.get(f"/api/records/{record_id}/draft/uploads").json()
    assert [(u["path"], u["state"]) for u in listed] == [("results/table.csv", "failed")]
    draft = api.get(f"/api/records/{record_id}/draft").json()
    assert [(u["path"], u["state"], u["message"]) for u in draft["uploads"]] == [
        ("results/table.csv", "failed", failed["message"])]
    assert not VersionFile.objects.exists() and not Blob.objects.exists()
    assert direct_objects(backend, local_blob_storage) == []
    assert AuditEvent.objects.filter(action="draft.upload_failed").count() == 1
    # Dismissed, it is gone; the path is free for another try.
    assert api.delete(upload["links"]["self"]).status_code == 204
    assert start(api, record_id, data, "results/table.csv").status_code == 201


def test_a_second_client_uploading_the_same_path_gets_a_409(api, record_id):
    data = os.urandom(1000)
    assert start(api, record_id, data).status_code == 201

    second = start(api, record_id, data)
    streamed = api.put(f"/api/records/{record_id}/draft/files/data/big.bin", data,
                       content_type="application/octet-stream")

    assert second.status_code == 409
    assert second.json()["detail"] == "'data/big.bin' is being uploaded by another client; resume or abort that " \
                                      "upload first."
    assert streamed.status_code == 409
    assert Upload.objects.count() == 1


def test_size_limit_and_record_quota_are_enforced_before_any_byte(api, record_id, settings):
    settings.MAX_FILE_SIZE = 10 * MIB
    too_big = api.post(f"/api/records/{record_id}/draft/uploads", {
        "path": "huge.bin", "size": 10 * MIB + 1, "sha256": "0" * 64}, format="json")
    assert too_big.status_code == 413 and "the limit is 10485760 bytes" in too_big.json()["detail"]

    settings.MAX_RECORD_SIZE = 12 * MIB
    assert api.post(f"/api/records/{record_id}/draft/uploads", {
        "path": "a.bin", "size": 8 * MIB, "sha256": "1" * 64}, format="json").status_code == 201
    over_quota = api.post(f"/api/records/{record_id}/draft/uploads", {
        "path": "b.bin", "size": 5 * MIB, "sha256": "2" * 64}, format="json")
    assert over_quota.status_code == 413 and "quota of 12582912 bytes" in over_quota.json()["detail"]

    bad_parts = api.post(f"/api/records/{record_id}/draft/uploads", {
        "path": "c.bin", "size": 1 * MIB, "sha256": "3" * 64, "part_size": 1024}, format="json")
    assert bad_parts.status_code == 400 and bad_parts.json()["errors"][0]["field"] == "part_size"


def test_more_than_ten_thousand_parts_are_refused(api, record_id, settings):
    settings.MAX_FILE_SIZE = settings.MAX_RECORD_SIZE = 10**12
    response = api.post(f"/api/records/{record_id}/draft/uploads", {
        "path": "many.bin", "size": 10_001 * PART, "sha256": "0" * 64, "part_size": PART}, format="json")
    assert response.status_code == 400 and "at most 10000 parts" in response.json()["detail"]


def test_an_upload_resumes_from_the_parts_the_store_holds(api, record_id, backend, eager_tasks,
                                                          django_capture_on_commit_callbacks):
    data = os.urandom(3 * PART)
    chunks = dict(enumerate(parts_of(data), start=1))
    upload = start(api, record_id, data).json()
    put_part(api, sign(api, upload, {2: chunks[2]})[2], chunks[2])  # the client died after one part

    held = {p["number"] for p in api.get(upload["links"]["self"]).json()["parts_received"]}
    missing = {n: chunks[n] for n in chunks if n not in held}
    for number, target in sign(api, upload, missing).items():
        put_part(api, target, chunks[number])

    assert held == {2} and sorted(missing) == [1, 3]
    assert complete(api, upload, django_capture_on_commit_callbacks).status_code == 202
    assert api.get(upload["links"]["self"]).json()["state"] == "ready"


def test_the_garbage_collector_aborts_expired_uploads(api, record_id, backend, local_blob_storage):
    data = os.urandom(2 * PART)
    upload = start(api, record_id, data).json()
    put_part(api, sign(api, upload, {1: data[:PART]})[1], data[:PART])
    Upload.objects.update(expires_at=timezone.now() - timedelta(minutes=1))

    report = blob_gc(grace=timedelta(hours=72))

    assert report.uploads_aborted == 1 and not report.problems
    assert not Upload.objects.exists()
    assert api.get(upload["links"]["self"]).status_code == 404
    if backend:
        client, bucket = backend
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert direct_objects(backend, local_blob_storage) == []


def test_part_urls_of_a_local_directory_are_signed_for_their_checksum(api, record_id):
    data = os.urandom(1000)
    upload = start(api, record_id, data).json()
    target = sign(api, upload, {1: data})[1]
    forged = dict(target, headers={**target["headers"], "x-amz-checksum-sha256": sha256_b64(b"other")})

    assert put_part(api, forged, b"other")[0] == 404
    tampered = dict(target, url=target["url"].replace("token=", "token=x"))
    assert put_part(api, tampered, data)[0] == 404
    assert put_part(api, target, data)[0] == 200


def test_a_draft_cannot_be_submitted_while_an_upload_is_under_way(api, user, no_queue):
    from tests.factories import demo_draft

    record_id = demo_draft(user).record.public_id
    start(api, record_id, os.urandom(100))

    response = api.post(f"/api/records/{record_id}/draft/actions/submit")

    assert response.status_code == 400
    assert "the uploads under way to finish (data/big.bin)" in response.json()["detail"]


def test_the_draft_page_shows_each_uploads_state_and_why_one_failed(api, user, client, record_id, eager_tasks,
                                                                    django_capture_on_commit_callbacks):
    data = os.urandom(300)
    failed = upload_all(api, record_id, data, "bad.csv", sha256=sha256_hex(b"not these bytes"))
    complete(api, failed, django_capture_on_commit_callbacks)
    start(api, record_id, data, "pending.csv")
    client.force_login(user)

    page = client.get(reverse("repository:draft_detail", kwargs={"record_id": record_id})).content.decode()

    assert "bad.csv: the bytes stored (300 bytes" in page and ">Failed</span>" in page
    assert "pending.csv" in page and ">Uploading</span>" in page
