"""A new version shares the published files by content: changing the draft never touches the published bytes."""

import io

import pytest

from repository import storage
from repository.services.files import draft_file_delete, draft_file_upload
from repository.services.new_versions import version_new_draft
from tests.factories import UserFactory, published_version

pytestmark = pytest.mark.django_db


def test_replacing_and_deleting_files_in_a_new_version_leaves_the_published_one_intact(user):
    first = published_version(user, UserFactory())
    published_files = {f.path: (f.blob_id, f.blob.sha256) for f in first.files.select_related("blob")}
    draft = version_new_draft(record=first.record, actor=user)

    draft_file_delete(version=draft, actor=user, path="data/measurements.csv")
    new_data = b"T,L\n300,1.0\n"
    draft_file_upload(version=draft, actor=user, path="data/other.csv", stream=io.BytesIO(new_data),
                      content_length=len(new_data))

    assert {f.path: (f.blob_id, f.blob.sha256) for f in first.files.select_related("blob")} == published_files
    kept = first.files.select_related("blob").get(path="data/measurements.csv").blob
    with storage.open_blob(kept.storage_key) as handle:
        assert handle.read()[:1]  # the bytes are still there
    assert set(draft.files.values_list("path", flat=True)) == {"thermal.ipynb", "data/other.csv"}
