"""Uploading, listing, downloading and deleting a draft's files through the API, on local storage and S3."""

import hashlib
import json

import pytest
import requests

from repository.models import Blob, VersionFile
from tests.factories import notebook_bytes, notebook_dict

pytestmark = pytest.mark.django_db


@pytest.fixture
def record_id(api):
    return api.post("/api/records", {}, format="json").json()["id"]


def put_file(api, record_id, path, data: bytes, **extra):
    return api.put(f"/api/records/{record_id}/draft/files/{path}", data,
                   content_type="application/octet-stream", **extra)


def test_upload_records_checksums_and_lists_the_file(api, record_id, local_blob_storage):
    data = b"x,y\n1,2\n" * 1000

    response = put_file(api, record_id, "data/table.csv", data)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["path"] == "data/table.csv"
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["md5"] == hashlib.md5(data).hexdigest()
    listed = api.get(f"/api/records/{record_id}/draft/files").json()
    assert [f["path"] for f in listed] == ["data/table.csv"]
    stored = list(local_blob_storage.rglob("*"))
    assert any(p.is_file() and p.read_bytes() == data for p in stored)


def test_download_returns_the_same_bytes_as_an_attachment(api, record_id):
    data = bytes(range(256)) * 10
    put_file(api, record_id, "raw.bin", data)

    response = api.get(f"/api/records/{record_id}/draft/files/raw.bin")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Disposition"].startswith("attachment")


def test_first_notebook_becomes_the_notebook_to_run(api, record_id):
    put_file(api, record_id, "analysis.ipynb", notebook_bytes())
    put_file(api, record_id, "other.ipynb", notebook_bytes(3))

    draft = api.get(f"/api/records/{record_id}/draft").json()

    assert draft["metadata"]["notebook_path"] == "analysis.ipynb"
    assert "a notebook (.ipynb) file" not in draft["missing_for_submission"]


def test_same_bytes_in_two_drafts_are_stored_once(api, record_id):
    other_id = api.post("/api/records", {}, format="json").json()["id"]
    data = b"shared dataset" * 100

    put_file(api, record_id, "a.dat", data)
    put_file(api, other_id, "b.dat", data)

    assert Blob.objects.count() == 1
    assert VersionFile.objects.count() == 2


def test_delete_removes_the_file_but_not_shared_bytes(api, record_id):
    other_id = api.post("/api/records", {}, format="json").json()["id"]
    put_file(api, record_id, "a.dat", b"abc")
    put_file(api, other_id, "a.dat", b"abc")

    response = api.delete(f"/api/records/{record_id}/draft/files/a.dat")

    assert response.status_code == 204
    assert api.get(f"/api/records/{record_id}/draft/files").json() == []
    assert api.get(f"/api/records/{other_id}/draft/files/a.dat").status_code == 200
    assert api.delete(f"/api/records/{record_id}/draft/files/a.dat").status_code == 404


@pytest.mark.parametrize(
    "path, status",
    [
        ("../escape.txt", 400),
        ("a/../../b.txt", 400),
        ("./a.txt", 400),
        ("a//b.txt", 400),
        ("a%00b.txt", 400),
        ("a%0Ab.txt", 400),
        ("a%5Cb.txt", 400),
        ("%2Fetc/passwd", 400),
    ],
)
def test_bad_paths_are_refused(api, record_id, path, status):
    response = put_file(api, record_id, path, b"data")

    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert VersionFile.objects.count() == 0


def test_duplicate_and_colliding_paths_are_refused(api, record_id):
    assert put_file(api, record_id, "data/a.csv", b"1").status_code == 201

    assert put_file(api, record_id, "data/a.csv", b"2").status_code == 409
    assert put_file(api, record_id, "Data/A.csv", b"2").status_code == 409
    assert put_file(api, record_id, "data", b"2").status_code == 409
    assert put_file(api, record_id, "data/a.csv/b", b"2").status_code == 409
    files = api.get(f"/api/records/{record_id}/draft/files").json()
    assert [(f["path"], f["size"]) for f in files] == [("data/a.csv", 1)]


def test_a_path_taken_by_a_data_reference_is_refused(api, record_id):
    reference = {"kind": "doi", "identifier": "10.5281/zenodo.1", "target_path": "data/in.csv",
                 "sha256": "c" * 64, "size": 3}
    api.put(f"/api/records/{record_id}/draft", {"data_references": [reference]}, format="json")

    assert put_file(api, record_id, "data/in.csv", b"abc").status_code == 409


def test_empty_file_is_refused(api, record_id):
    response = put_file(api, record_id, "empty.txt", b"", CONTENT_LENGTH="0")

    assert response.status_code == 400
    assert "empty" in response.json()["detail"]


def test_missing_content_length_is_411(api, record_id):
    response = api.generic("PUT", f"/api/records/{record_id}/draft/files/a.txt", b"", content_type="text/plain",
                           CONTENT_LENGTH="")

    assert response.status_code == 411


def test_file_over_the_size_limit_is_413_and_nothing_is_kept(api, record_id, settings, local_blob_storage):
    settings.MAX_FILE_SIZE = 1000

    response = put_file(api, record_id, "big.bin", b"0" * 1001)

    assert response.status_code == 413
    assert "1000" in response.json()["detail"]
    assert VersionFile.objects.count() == 0 and Blob.objects.count() == 0
    assert not [p for p in local_blob_storage.rglob("*") if p.is_file()]


def test_body_longer_than_announced_is_cut_at_content_length(api, record_id):
    # A client cannot smuggle bytes past the limit by lying about the length: only Content-Length bytes count.
    response = api.generic("PUT", f"/api/records/{record_id}/draft/files/a.txt", b"abcdef",
                           content_type="application/octet-stream", CONTENT_LENGTH="3")

    assert response.status_code == 201
    assert response.json()["size"] == 3


def test_the_file_count_limit_is_413(api, record_id, settings):
    settings.MAX_FILES_PER_VERSION = 2
    put_file(api, record_id, "1.txt", b"1")
    put_file(api, record_id, "2.txt", b"2")

    response = put_file(api, record_id, "3.txt", b"3")

    assert response.status_code == 413
    assert "at most 2 files" in response.json()["detail"]


def _notebook_with(change) -> bytes:
    document = notebook_dict()
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "data, words",
    [
        (b"not json at all", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (json.dumps({"cells": []}).encode(), "nbformat"),
        (_notebook_with(lambda nb: nb.update(nbformat=3)), "nbformat 3"),
        (_notebook_with(lambda nb: nb["cells"][1].update(source=5)), "cells/1/source"),
        (_notebook_with(lambda nb: nb["cells"][1].pop("outputs")), "'outputs' is a required property"),
        (_notebook_with(lambda nb: nb["cells"][2].update(id=nb["cells"][1]["id"])), "used by more than one cell"),
        (b"[" * 100000 + b"]" * 100000, "nested"),
    ],
)
def test_invalid_notebooks_are_refused_with_the_first_problem(api, record_id, data, words, local_blob_storage):
    response = put_file(api, record_id, "broken.ipynb", data)

    assert response.status_code == 400, response.content
    assert words in response.json()["detail"]
    assert VersionFile.objects.count() == 0
    assert not [p for p in local_blob_storage.rglob("*") if p.is_file()]


def test_a_notebook_over_the_notebook_limit_is_413(api, record_id, settings):
    settings.MAX_NOTEBOOK_SIZE = 100

    response = put_file(api, record_id, "nb.ipynb", notebook_bytes())

    assert response.status_code == 413
    assert "notebook" in response.json()["detail"]


@pytest.mark.s3
def test_upload_to_s3_stores_the_object_under_its_key(api, record_id, s3_blob_storage, settings):
    client, bucket = s3_blob_storage
    # Several multipart parts, so the streamed multipart path is what is tested.
    settings.STORAGES["blobs"]["OPTIONS"]["transfer_config"] = _small_parts()
    data = hashlib.sha256(b"seed").digest() * (12 * 1024 * 1024 // 32)

    response = put_file(api, record_id, "data/big.bin", data)

    assert response.status_code == 201, response.content
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    blob = Blob.objects.get()
    stored = client.get_object(Bucket=bucket, Key=blob.storage_key)["Body"].read()
    assert stored == data
    download = api.get(f"/api/records/{record_id}/draft/files/data/big.bin")
    assert download.status_code == 302  # to a presigned URL: the bytes come straight from S3
    assert hashlib.sha256(requests.get(download["Location"], timeout=30).content).hexdigest() == blob.sha256


@pytest.mark.s3
def test_s3_upload_over_the_limit_leaves_no_object(api, record_id, s3_blob_storage, settings):
    client, bucket = s3_blob_storage
    settings.STORAGES["blobs"]["OPTIONS"]["transfer_config"] = _small_parts()
    settings.MAX_FILE_SIZE = 11 * 1024 * 1024
    data = b"z" * (12 * 1024 * 1024)

    # No Content-Length check can catch it first: the test client sends the real length, so lie upwards.
    response = api.generic("PUT", f"/api/records/{record_id}/draft/files/big.bin", data,
                           content_type="application/octet-stream", CONTENT_LENGTH=str(len(data)))

    assert response.status_code == 413
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert Blob.objects.count() == 0


@pytest.mark.s3
def test_s3_down_gives_503_and_nothing_recorded(api, record_id, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {"BACKEND": "repository.integrations.s3.S3Storage",
                  "OPTIONS": {"bucket_name": "nowhere", "endpoint_url": "http://127.0.0.1:9", "access_key": "x",
                              "secret_key": "y", "region_name": "us-east-1", "file_overwrite": True}},
    }

    response = put_file(api, record_id, "a.txt", b"abc")

    assert response.status_code == 503
    assert "nothing was saved" in response.json()["title"]
    assert VersionFile.objects.count() == 0


def _small_parts():
    from boto3.s3.transfer import TransferConfig

    size = 5 * 1024 * 1024
    return TransferConfig(multipart_threshold=size, multipart_chunksize=size, max_concurrency=2)


@pytest.mark.s3
def test_the_s3_storage_configured_from_settings_uploads(api, record_id, s3_endpoint, settings):
    """The storage exactly as the settings build it from S3_* variables, against the loopback endpoint."""
    import boto3

    from repository import settings as project_settings

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket="configured-bucket")
    storage = project_settings._s3_storage("configured-bucket")
    storage["OPTIONS"].update(endpoint_url=s3_endpoint, access_key="testing", secret_key="testing")
    settings.STORAGES = {**settings.STORAGES, "blobs": storage}
    data = b"p" * (20 * 1024 * 1024 + 5)

    response = put_file(api, record_id, "data/big.bin", data)

    assert response.status_code == 201, response.content
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    parts = client.head_object(Bucket="configured-bucket", Key=Blob.objects.get().storage_key, PartNumber=1)
    assert parts["PartsCount"] == 3  # 8 MiB parts: the configured part size is what boto3 used
