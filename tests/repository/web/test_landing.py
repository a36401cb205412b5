"""Public landing pages of published versions."""

import hashlib

import pytest
from django.urls import reverse

from repository.models import Version
from repository.services.drafts import record_create
from tests.factories import upload

pytestmark = pytest.mark.django_db


def published(user, title="Published work"):
    version = record_create(owner=user, metadata={"title": title, "description": "<b>bold?</b>"})
    upload(version, user, path="nb.ipynb")
    Version.objects.filter(pk=version.pk).update(state=Version.State.PUBLISHED)
    return Version.objects.get(pk=version.pk)


def test_anyone_sees_the_latest_published_version_and_downloads_its_files(client, user):
    version = published(user)
    record_id = version.record.public_id

    html = client.get(reverse("repository:record_landing", kwargs={"record_id": record_id})).content.decode()

    assert "Published work" in html and "&lt;b&gt;bold?&lt;/b&gt;" in html
    blob = version.files.get().blob
    download = client.get(reverse("repository:published_file",
                                  kwargs={"record_id": record_id, "number": 1, "file_path": "nb.ipynb"}))
    assert download.status_code == 200
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == blob.sha256
    assert download["Content-Disposition"].startswith("attachment")


def test_drafts_have_no_landing_page_and_their_files_are_not_public(client, user):
    draft = record_create(owner=user, metadata={"title": "Secret draft"})
    upload(draft, user, path="nb.ipynb")
    record_id = draft.record.public_id

    assert client.get(reverse("repository:record_landing", kwargs={"record_id": record_id})).status_code == 404
    assert client.get(reverse("repository:published_file", kwargs={"record_id": record_id, "number": 1,
                                                                   "file_path": "nb.ipynb"})).status_code == 404
