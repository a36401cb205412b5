"""Access to the storage aliases of settings.STORAGES ("blobs", "backup") and streamed writes into them.

Code reaches file storage only through this module. `store_stream` hashes the bytes while they flow to the
storage backend (FileSystemStorage or django-storages' S3Storage, whose upload is multipart and parallel), so
a file of any size is never held whole in memory.
"""

import hashlib
import io
import uuid
from dataclasses import dataclass

from django.core.files import File
from django.core.files.storage import Storage, storages

from repository.errors import InvalidInput, PayloadTooLarge, StorageUnavailable
from repository.integrations.s3 import STORAGE_ERRORS


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


class HashingReader(io.RawIOBase):
    """A read-only, non-seekable view of a stream that hashes and counts what passes through.

    It raises PayloadTooLarge as soon as more than `max_size` bytes arrive, and InvalidInput when the stream
    ends before `expected_size` bytes (a client that disconnected mid-upload). Being non-seekable matters:
    storage backends then read it once, front to back, and the hashes stay right.
    """

    def __init__(self, stream, *, max_size: int, expected_size: int | None = None, tee=None):
        self._stream = stream
        self._max_size = max_size
        self._expected_size = expected_size
        self._tee = tee
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    # The request stream is read in pieces of at most this size, however much the caller asks for. boto3 asks
    # for a whole part (8-16 MiB) at once; gunicorn answers a large read by growing a BytesIO to that size and
    # copying it twice more, and those part-sized temporary buffers cost CPU and leave glibc's heap fragmented.
    # Pieces are hashed while still in the CPU cache and joined once.
    READ_PIECE = 1024 * 1024

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = None
        if self._expected_size is not None:
            remaining = self._expected_size - self.size
            if remaining <= 0:
                return b""
            size = remaining if size is None else min(size, remaining)
        pieces = []
        wanted = size
        while wanted is None or wanted > 0:
            piece = self._read_piece(self.READ_PIECE if wanted is None else min(self.READ_PIECE, wanted))
            if not piece:
                break
            pieces.append(piece)
            if wanted is not None:
                wanted -= len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _read_piece(self, size: int) -> bytes:
        try:
            data = self._stream.read(size)
        except Exception as exc:  # the WSGI server's own error for a dropped connection varies by server
            raise InvalidInput(f"The upload was interrupted after {self.size} bytes; nothing was saved.") from exc
        if not data:
            if self._expected_size is not None and self.size < self._expected_size:
                raise InvalidInput(
                    f"The upload ended after {self.size} of {self._expected_size} bytes; nothing was saved."
                )
            return b""
        self.size += len(data)
        if self.size > self._max_size:
            raise PayloadTooLarge(f"The file is larger than the limit of {self._max_size} bytes.")
        self.sha256.update(data)
        self.md5.update(data)
        if self._tee is not None:
            self._tee.write(data)
        return data


def new_blob_key() -> str:
    # Unique per upload, so concurrent uploads never write over each other; blobs dedupe by sha256 in the
    # database, and the key is kept on the Blob row.
    name = uuid.uuid4().hex
    return f"blobs/{name[:2]}/{name[2:4]}/{name}"


def store_stream(stream, *, max_size: int, expected_size: int | None = None, tee=None) -> StoredObject:
    """Write a stream to blob storage under a new key; return the key, sha256, md5 and size."""
    reader = HashingReader(stream, max_size=max_size, expected_size=expected_size, tee=tee)
    key = new_blob_key()
    storage = blob_storage()
    try:
        saved_key = storage.save(key, File(reader, name=key))
    except STORAGE_ERRORS as exc:
        delete_quietly(key)
        raise StorageUnavailable() from exc
    except Exception:
        # Whatever reached the backend is incomplete; make sure no partial object stays behind.
        delete_quietly(key)
        raise
    return StoredObject(
        storage_key=saved_key, sha256=reader.sha256.hexdigest(), md5=reader.md5.hexdigest(), size=reader.size
    )


def delete_quietly(key: str) -> None:
    """Delete an object we created and will not use; a failure only leaves garbage for the sweeper."""
    try:
        blob_storage().delete(key)
    except Exception:  # noqa: BLE001 - cleanup must never hide the error that caused it
        pass


def open_blob(key: str):
    return blob_storage().open(key, "rb")
