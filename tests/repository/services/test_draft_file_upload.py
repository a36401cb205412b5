"""draft_file_upload: streaming, hashing and the guarantees around storage."""

import hashlib
import io

import pytest

from repository.errors import Conflict, InvalidInput, StorageUnavailable
from repository.models import Blob, Version, VersionFile
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload

pytestmark = pytest.mark.django_db


class ChunkedStream:
    """A request body that arrives in small pieces and remembers the largest read asked of it."""

    def __init__(self, data: bytes, piece: int = 7919):
        self._data = io.BytesIO(data)
        self._piece = piece
        self.largest_read = 0

    def read(self, size=-1):
        self.largest_read = max(self.largest_read, size if size and size > 0 else 1 << 62)
        return self._data.read(min(size, self._piece) if size and size > 0 else self._piece)


def test_hashes_are_computed_from_the_stream(user):
    version = record_create(owner=user)
    data = bytes(range(256)) * 4096

    version_file = draft_file_upload(version=version, actor=user, path="a.bin", stream=ChunkedStream(data),
                                     content_length=len(data))

    assert version_file.blob.sha256 == hashlib.sha256(data).hexdigest()
    assert version_file.blob.md5 == hashlib.md5(data).hexdigest()
    assert version_file.blob.size == len(data)


def test_the_stream_is_read_in_bounded_pieces(user, settings):
    version = record_create(owner=user)
    data = b"q" * (3 * 1024 * 1024)
    stream = ChunkedStream(data)

    draft_file_upload(version=version, actor=user, path="a.bin", stream=stream, content_length=len(data))

    assert stream.largest_read <= 1024 * 1024


def test_a_client_that_stops_early_leaves_nothing(user, local_blob_storage):
    version = record_create(owner=user)

    with pytest.raises(InvalidInput) as raised:
        draft_file_upload(version=version, actor=user, path="a.bin", stream=io.BytesIO(b"12345"), content_length=10)

    assert "5 of 10 bytes" in raised.value.detail
    assert VersionFile.objects.count() == 0 and Blob.objects.count() == 0
    assert not [p for p in local_blob_storage.rglob("*") if p.is_file()]


def test_a_dropped_connection_is_a_clear_error(user):
    class Dropped:
        def read(self, size=-1):
            raise ConnectionResetError("peer went away")

    version = record_create(owner=user)

    with pytest.raises(InvalidInput, match="interrupted"):
        draft_file_upload(version=version, actor=user, path="a.bin", stream=Dropped(), content_length=10)


def test_files_of_a_version_under_review_cannot_change(user):
    version = record_create(owner=user)
    Version.objects.filter(pk=version.pk).update(state=Version.State.IN_REVIEW)
    version.refresh_from_db()

    with pytest.raises(Conflict):
        draft_file_upload(version=version, actor=user, path="a.bin", stream=io.BytesIO(b"1"), content_length=1)


def test_storage_failure_is_storage_unavailable_and_records_nothing(user, settings, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the storage folder should be")
    settings.STORAGES = {**settings.STORAGES, "blobs": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(blocked)}}}
    version = record_create(owner=user)

    with pytest.raises(StorageUnavailable):
        draft_file_upload(version=version, actor=user, path="a.bin", stream=io.BytesIO(b"1"), content_length=1)
    assert VersionFile.objects.count() == 0


def test_a_path_taken_during_the_transfer_leaves_no_blob_behind(user, local_blob_storage, monkeypatch):
    """Two uploads to one path at once: the second to finish is refused and leaves neither row nor bytes."""
    from repository.services import files

    version = record_create(owner=user)
    real_store = files.storage.store_stream

    def store_while_someone_else_takes_the_path(stream, **kwargs):
        stored = real_store(stream, **kwargs)
        monkeypatch.setattr(files.storage, "store_stream", real_store)
        draft_file_upload(version=version, actor=user, path="a.bin", stream=io.BytesIO(b"theirs"), content_length=6)
        return stored

    monkeypatch.setattr(files.storage, "store_stream", store_while_someone_else_takes_the_path)

    with pytest.raises(Conflict):
        draft_file_upload(version=version, actor=user, path="a.bin", stream=io.BytesIO(b"mine!"), content_length=5)

    assert list(Blob.objects.values_list("size", flat=True)) == [6]
    stored_files = [p for p in local_blob_storage.rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in stored_files] == [b"theirs"]


def _upload(version, user, path: str, data: bytes = b"a,b\n1,2\n"):
    return draft_file_upload(version=version, actor=user, path=path, stream=io.BytesIO(data), content_length=len(data))


@pytest.mark.parametrize(("existing", "lookalike", "named"), [
    ("data.csv", "d\u0430ta.csv", "CYRILLIC SMALL LETTER A, U+0430"),  # Cyrillic а for Latin a
    ("data/input.csv", "data/inp\u03c5t.csv", "GREEK SMALL LETTER UPSILON"),  # Greek υ for u
    ("model.py", "m\u03bfdel.py", "GREEK SMALL LETTER OMICRON"),
    ("data.csv", "\uff44ata.csv", "FULLWIDTH LATIN SMALL LETTER D"),
    ("Data.csv", "d\u0430ta.csv", "CYRILLIC SMALL LETTER A"),  # letter case and a look-alike together
])
def test_a_name_that_only_looks_like_an_existing_one_is_refused(user, existing, lookalike, named):
    version = record_create(owner=user)
    _upload(version, user, existing)

    with pytest.raises(Conflict) as refused:
        _upload(version, user, lookalike)

    assert f"looks the same as the existing '{existing}'" in refused.value.detail
    assert named in refused.value.detail
    assert list(VersionFile.objects.filter(version=version).values_list("path", flat=True)) == [existing]


def test_names_that_differ_visibly_are_accepted_in_any_script(user):
    version = record_create(owner=user)
    for path in ("data.csv", "date.csv", "résumé.csv", "resume.csv", "Москва.csv", "данные.csv"):
        _upload(version, user, path)

    assert VersionFile.objects.filter(version=version).count() == 6
