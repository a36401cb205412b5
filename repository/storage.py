"""Access to the storage aliases of settings.STORAGES ("blobs", "backup") and the life of objects in primary storage.

Code reaches file storage only through this module (and S3 only through repository/integrations/s3/). A failed
storage operation raises one of STORAGE_ERRORS: StorageError (S3, translated by the integration) or OSError (a
local directory); nothing here or in the callers catches the SDK's own types.

Keys. New bytes are streamed to a temporary key, `uploads/tmp/<uuid>`, and hashed on the way (`store_stream`);
a file of any size is never held whole in memory. Once the rows that use them are committed, `place_at_content_key`
puts them at their content address, `blobs/sha256/<ab>/<cd>/<sha256>` (S3: a server-side copy; a local
directory: a hard link), and the temporary object is deleted (services/blobs.py `blob_promote`). Blob rows made
before content addressing keep their `blobs/<ab>/<cd>/<uuid>` keys: Blob.storage_key is per row and is what every
reader uses, so both kinds live side by side and nothing is rewritten.

Checksums (S3). Uploads send SHA-256 checksums: boto3 computes one for each part (or for the single PUT) and S3
refuses bytes that do not match. Afterwards the checksum S3 reports for the object is compared with ours: a
single PUT's full-object SHA-256 with the streamed sha256, a multipart object's composite checksum (SHA-256 over
the parts' SHA-256 digests) with the one recomputed from the part digests HashingReader took at the same part
boundaries. The copy to the content address asks S3 for a full-object SHA-256 of the copy, which must equal the
sha256. A mismatch raises StorageChecksumMismatch and keeps nothing. A local directory reports no checksum;
the fixity check re-reads it later.

Never overwritten, never deleted while published: a content address is written only where nothing is (a hard link
fails on an existing name; S3's CopyObject is sent with If-None-Match: *), an existing object there is verified
and reused, and `delete_object` refuses any key that a file of an accepted version uses.
"""

import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.utils.http import content_disposition_header

from repository.errors import ProtectedObject, StorageChecksumMismatch, StorageUnavailable
from repository.hashing_reader import HashingReader
from repository.integrations import s3
from repository.integrations.s3 import STORAGE_ERRORS

logger = logging.getLogger(__name__)

TEMPORARY_PREFIX = "uploads/tmp/"
# Direct uploads' objects (repository/upload_storage.py): temporary too, until their blob is promoted.
DIRECT_PREFIX = "uploads/direct/"
CONTENT_PREFIX = "blobs/sha256/"
REHASH_PIECE = 1024 * 1024


def blob_storage() -> Storage:
    return storages["blobs"]


def backup_storage() -> Storage:
    return storages["backup"]


@dataclass(frozen=True)
class StoredObject:
    storage_key: str
    sha256: str
    md5: str
    size: int


def temporary_key() -> str:
    return f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}"


def content_key(sha256: str) -> str:
    return f"{CONTENT_PREFIX}{sha256[:2]}/{sha256[2:4]}/{sha256}"


def is_temporary_key(key: str) -> bool:
    return key.startswith((TEMPORARY_PREFIX, DIRECT_PREFIX))


def store_stream(stream, *, max_size: int, expected_size: int | None = None, tee=None) -> StoredObject:
    """Write a stream to blob storage under a new temporary key; return that key and the sha256, md5 and size.

    The caller records the bytes (a Blob row) and has them moved to their content address after the commit, or
    deletes the temporary object. Raises PayloadTooLarge or InvalidInput (from the stream), StorageUnavailable,
    StorageChecksumMismatch; whatever reached storage is removed first.
    """
    storage = blob_storage()
    on_s3 = s3.is_s3(storage)
    reader = HashingReader(stream, max_size=max_size, expected_size=expected_size, tee=tee,
                           part_size=s3.upload_part_size(storage) if on_s3 else None)
    key = temporary_key()
    try:
        if on_s3:
            s3.upload(storage, key, reader)
            _check_upload(storage, key, reader)
        else:
            saved = storage.save(key, File(reader, name=key))
            if saved != key:  # a uuid name is never taken; refuse rather than lose track of an object
                raise OSError(f"storage wrote {saved} instead of {key}")
    except STORAGE_ERRORS as exc:
        discard_failed_upload(key)
        raise StorageUnavailable() from exc
    except Exception:
        # Whatever reached the backend is incomplete or wrong; make sure no partial object stays behind.
        discard_failed_upload(key)
        raise
    return StoredObject(storage_key=key, sha256=reader.sha256.hexdigest(), md5=reader.md5.hexdigest(),
                        size=reader.size)


def _check_upload(storage, key: str, reader: HashingReader) -> None:
    info = s3.object_info(storage, key)
    if info is None:
        raise StorageChecksumMismatch(f"S3 reports no object at {key} after the upload.")
    if info.size != reader.size:
        raise StorageChecksumMismatch(f"S3 holds {info.size} bytes at {key}; {reader.size} were sent.")
    if info.sha256 is None:  # an endpoint without checksums: read the object back
        _check_by_reading(storage, key, reader.sha256.hexdigest(), reader.size)
        return
    expected = {s3.b64_sha256(reader.sha256.digest()), s3.b64_sha256(reader.composite_sha256())}
    if info.sha256 not in expected:
        raise StorageChecksumMismatch(
            f"S3 reports SHA-256 {info.sha256} for {key}; the bytes sent hash to {' or '.join(sorted(expected))}.")


def _check_by_reading(storage, key: str, sha256: str, size: int) -> None:
    found = hashlib.sha256()
    length = 0
    with storage.open(key, "rb") as handle:
        while piece := handle.read(REHASH_PIECE):
            found.update(piece)
            length += len(piece)
    if length != size or found.hexdigest() != sha256:
        raise StorageChecksumMismatch(f"{key} holds {length} bytes with sha256 {found.hexdigest()}, not {size} "
                                      f"bytes with sha256 {sha256}.")


def place_at_content_key(key: str, *, sha256: str, size: int) -> str:
    """Make the verified bytes at `key` available at their content address too; return that address.

    Nothing is ever written over an existing object: if the address is taken, the object there is checked to
    hold these bytes (its reported SHA-256, or by reading it) and reused. The object at `key` stays; the caller
    deletes it once its rows point at the content address. Raises StorageUnavailable or StorageChecksumMismatch.
    """
    target = content_key(sha256)
    if key == target:
        return target
    storage = blob_storage()
    try:
        if s3.is_s3(storage):
            _place_on_s3(storage, key, target, sha256=sha256, size=size)
        else:
            _place_in_directory(storage, key, target, sha256=sha256, size=size)
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable() from exc
    return target


def _place_on_s3(storage, key: str, target: str, *, sha256: str, size: int) -> None:
    expected = s3.b64_sha256(bytes.fromhex(sha256))
    if s3.object_info(storage, target) is None:
        try:
            reported = s3.copy_new(storage, key, target, size=size)
        except FileExistsError:
            pass  # someone placed the same bytes a moment ago: checked below like any existing object
        else:
            try:
                _check_copy(storage, key, target, reported=reported, expected=expected, sha256=sha256, size=size)
            except StorageChecksumMismatch:
                storage.delete(target)  # the copy is ours and wrong, and no row points at it yet
                raise
            return
    info = s3.object_info(storage, target)
    if info is None or info.size != size:
        raise StorageChecksumMismatch(f"The object at {target} is not {size} bytes long.")
    if info.sha256 != expected:  # a composite checksum, or none: compare the bytes themselves
        _check_by_reading(storage, target, sha256, size)


def _check_copy(storage, key: str, target: str, *, reported: str | None, expected: str, sha256: str,
                size: int) -> None:
    if reported == expected:  # S3's full-object SHA-256 of the copy
        return
    if reported is None:  # an endpoint without checksums
        _check_by_reading(storage, target, sha256, size)
        return
    # A multipart copy (over 5 GiB) has a composite checksum over parts of the upload's size: it must be the
    # upload's, which was checked against our own part digests.
    source = s3.object_info(storage, key)
    if source is None or reported != source.sha256:
        raise StorageChecksumMismatch(f"S3 reports SHA-256 {reported} for the copy at {target}; expected "
                                      f"{expected}. Nothing was kept.")


def _place_in_directory(storage, key: str, target: str, *, sha256: str, size: int) -> None:
    source_path, target_path = storage.path(key), storage.path(target)
    os.makedirs(os.path.dirname(target_path), exist_ok=True)
    try:
        # A hard link is atomic and, unlike os.replace, never replaces an existing file.
        os.link(source_path, target_path)
        return
    except FileExistsError:
        pass
    except OSError:
        # A file system without hard links: copy into a file that must not exist yet (O_EXCL).
        try:
            with open(source_path, "rb") as source, open(target_path, "xb") as copy:
                shutil.copyfileobj(source, copy, REHASH_PIECE)
            _check_by_reading(storage, target, sha256, size)
            return
        except FileExistsError:
            pass
    _check_by_reading(storage, target, sha256, size)


def published_key(key: str) -> bool:
    """Whether a file of an accepted version (publishing, published, withdrawn) uses the object at `key`."""
    from repository.models import Version, VersionFile

    return VersionFile.objects.filter(blob__storage_key=key, version__state__in=Version.ACCEPTED_STATES).exists()


def delete_object(key: str) -> None:
    """Delete one object of blob storage. Raises ProtectedObject for a key that a published file uses, and the
    storage's own error when the deletion fails; deleting a missing object is not an error."""
    if published_key(key):
        raise ProtectedObject(f"{key} holds a file of an accepted version; it is never deleted.")
    blob_storage().delete(key)


def delete_quietly(key: str) -> bool:
    """Delete an object we created and will not use; a failure only leaves garbage for the sweeper. A key that a
    published file uses is refused (and logged): that would be a bug in the caller."""
    try:
        delete_object(key)
    except ProtectedObject:
        logger.error("Refused to delete %s: a file of an accepted version uses it.", key)
        return False
    except Exception:  # noqa: BLE001 - cleanup must never hide the error that caused it
        return False
    return True


def discard_failed_upload(key: str) -> None:
    """Remove what a failed upload to the temporary `key` left: the object, and on S3 the parts of its unfinished
    multipart upload (stored and billed, but invisible). boto3 aborts the upload itself when it can; when storage
    failed, so did that, and the parts would stay until the garbage collector's sweep days later. Tried now, and
    if storage is still failing, by a task retried until it is back."""
    try:
        discard_temporary(key)
    except Exception:  # noqa: BLE001 - cleanup must never hide the error that caused it
        from repository.tasks import temporary_upload_discard_task

        try:
            temporary_upload_discard_task.delay(key)
        except Exception:  # noqa: BLE001 - the broker is down too; the garbage collector's sweep remains
            logger.warning("Could not queue the removal of the failed upload %s; the blob sweep removes it.", key,
                           exc_info=True)


def discard_temporary(key: str) -> int:
    """Delete the temporary object at `key` and abort the multipart uploads to it; return how many were aborted.
    Raises one of STORAGE_ERRORS when storage fails."""
    if not is_temporary_key(key):
        raise ProtectedObject(f"{key} is not a temporary key; only failed uploads are discarded this way.")
    storage = blob_storage()
    aborted = 0
    if s3.is_s3(storage):
        # Any upload to this key is ours and failed: the key is a fresh uuid, used by one upload only.
        aborted = s3.abort_uploads_older_than(storage, key, datetime.now(UTC) + timedelta(days=1))
    storage.delete(key)
    return aborted


def object_exists(key: str) -> bool:
    return blob_storage().exists(key)


def temporary_objects_older_than(before: datetime) -> Iterator[str]:
    """Keys under uploads/tmp/ last written before `before`: uploads that crashed, or were never moved."""
    storage = blob_storage()
    if s3.is_s3(storage):
        yield from s3.objects_older_than(storage, TEMPORARY_PREFIX, before)
        return
    try:
        _folders, names = storage.listdir(TEMPORARY_PREFIX)
    except FileNotFoundError:
        return
    for name in names:
        key = TEMPORARY_PREFIX + name
        try:
            if storage.get_modified_time(key) < before:
                yield key
        except FileNotFoundError:
            continue


def abort_stale_uploads(before: datetime, *, dry_run: bool = False) -> int:
    """S3: abort multipart uploads to uploads/tmp/ begun before `before` (their parts are stored, and billed,
    until then); return how many (with `dry_run`, how many there are). A local directory has none."""
    storage = blob_storage()
    if not s3.is_s3(storage):
        return 0
    return s3.abort_uploads_older_than(storage, TEMPORARY_PREFIX, before, dry_run=dry_run)


def download_url(key: str, *, filename: str) -> str | None:
    """A short-lived presigned GET URL for the object (S3), saving it as `filename`; None for a local directory,
    whose files the application streams itself."""
    storage = blob_storage()
    if not s3.is_s3(storage):
        return None
    return s3.presigned_get_url(storage, key, ttl=settings.S3_PRESIGNED_TTL,
                                content_disposition=content_disposition_header(True, filename))


def open_blob(key: str):
    return blob_storage().open(key, "rb")


def open_blob_stream(key: str):
    """The object under `key` as a stream read front to back as it arrives (S3: the response body, not a whole
    download first), for reading large objects once. FileNotFoundError when it is missing; STORAGE_ERRORS."""
    storage = blob_storage()
    if s3.is_s3(storage):
        return s3.open_stream(storage, key)
    return storage.open(key, "rb")
