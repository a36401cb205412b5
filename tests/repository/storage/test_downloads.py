"""File downloads: a presigned S3 redirect, or a local file streamed with Range support (public and draft files)."""

import hashlib
import os
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from repository.models import Version
from tests.factories import upload
from tests.repository.storage.helpers import draft

pytestmark = pytest.mark.django_db

DATA = bytes(range(256)) * 4  # 1024 bytes


def published(user, path: str = "data/raw.bin", data: bytes = DATA) -> Version:
    version = draft(user)
    upload(version, user, path, data)
    Version.objects.filter(pk=version.pk).update(state=Version.State.PUBLISHED)
    return Version.objects.get(pk=version.pk)


def file_url(version: Version, path: str = "data/raw.bin") -> str:
    return reverse("repository:published_file", kwargs={"record_id": version.record.public_id,
                                                        "number": version.number, "file_path": path})


# --- S3: presigned redirects -------------------------------------------------------------------------------------

@pytest.mark.s3
def test_an_s3_download_redirects_to_a_short_lived_presigned_url_that_serves_the_bytes(client, user, s3_blob_storage,
                                                                                     settings):
    settings.S3_PRESIGNED_TTL = 120
    data = os.urandom(70_000)
    version = published(user, "results/table.bin", data)

    response = client.get(file_url(version, "results/table.bin"))

    assert response.status_code == 302
    sha256 = hashlib.sha256(data).hexdigest()
    assert response["Digest"] == f"sha-256={sha256}"
    assert 'rel="collection"' in response["Link"]
    assert "no-store" in response["Cache-Control"]
    query = parse_qs(urlparse(response["Location"]).query)
    assert query["X-Amz-Expires"] == ["120"]
    fetched = requests.get(response["Location"], timeout=30)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == sha256
    assert fetched.headers["Content-Disposition"].startswith("attachment")
    assert 'filename="table.bin"' in fetched.headers["Content-Disposition"]


@pytest.mark.s3
def test_a_withdrawn_version_on_s3_is_still_410_without_a_redirect(client, user, s3_blob_storage):
    version = published(user)
    Version.objects.filter(pk=version.pk).update(state=Version.State.WITHDRAWN, withdrawn_at=timezone.now(),
                                                 withdrawal_reason="Wrong data")

    response = client.get(file_url(version))

    assert response.status_code == 410
    assert "Location" not in response


@pytest.mark.s3
def test_a_draft_file_on_s3_redirects_its_owner_to_a_presigned_url(api, user, s3_blob_storage):
    record_id = api.post("/api/records", {}, format="json").json()["id"]
    data = os.urandom(5_000)
    api.put(f"/api/records/{record_id}/draft/files/x.bin", data, content_type="application/octet-stream")

    response = api.get(f"/api/records/{record_id}/draft/files/x.bin")

    assert response.status_code == 302
    assert requests.get(response["Location"], timeout=30).content == data


# --- Local directory: streamed, with Range -----------------------------------------------------------------------

def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_local_download_is_streamed_whole_and_says_it_takes_ranges(client, user):
    version = published(user)

    response = client.get(file_url(version))

    assert response.status_code == 200
    assert body(response) == DATA
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(DATA))
    assert response["Digest"] == f"sha-256={hashlib.sha256(DATA).hexdigest()}"
    assert 'rel="collection"' in response["Link"]


@pytest.mark.parametrize("header, first, last", [
    ("bytes=10-19", 10, 19),
    ("bytes=1000-", 1000, 1023),
    ("bytes=-5", 1019, 1023),
    ("bytes=1020-5000", 1020, 1023),
    ("bytes=-5000", 0, 1023),
    ("bytes=0-" + "9" * 5000, 0, 1023),  # more digits than int() converts: past the end
    ("bytes=-" + "9" * 5000, 0, 1023),
])
def test_a_single_range_is_206_with_exactly_those_bytes(client, user, header, first, last):
    version = published(user)

    response = client.get(file_url(version), HTTP_RANGE=header)

    assert response.status_code == 206
    assert body(response) == DATA[first:last + 1]
    assert response["Content-Range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert response["Content-Length"] == str(last - first + 1)
    assert response["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0", "bytes=" + "9" * 5000 + "-",
                                    "bytes=99999999999999999999999-99999999999999999999999"])
def test_a_range_beyond_the_end_is_416(client, user, header):
    version = published(user)

    response = client.get(file_url(version), HTTP_RANGE=header)

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(DATA)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=abc"])
def test_several_ranges_or_a_range_we_do_not_understand_get_the_whole_file(client, user, header):
    version = published(user)

    response = client.get(file_url(version), HTTP_RANGE=header)

    assert response.status_code == 200
    assert body(response) == DATA


def test_if_range_with_another_validator_gets_the_whole_file_and_with_ours_the_range(client, user):
    version = published(user)
    etag = client.get(file_url(version))["ETag"]

    stale = client.get(file_url(version), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"something-else"')
    fresh = client.get(file_url(version), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=etag)

    assert (stale.status_code, body(stale)) == (200, DATA)
    assert (fresh.status_code, body(fresh)) == (206, DATA[:10])


def test_a_draft_file_takes_ranges_through_the_api(api):
    record_id = api.post("/api/records", {}, format="json").json()["id"]
    api.put(f"/api/records/{record_id}/draft/files/raw.bin", DATA, content_type="application/octet-stream")

    response = api.get(f"/api/records/{record_id}/draft/files/raw.bin", HTTP_RANGE="bytes=100-199")

    assert response.status_code == 206
    assert body(response) == DATA[100:200]
