"""Reading and rewriting primary objects for restore and fixity: hashed while streamed, verified before written.

A blob is rewritten into primary storage only from bytes whose sha256 and size were checked first: they are
copied into a spooled temporary file (in memory up to SPOOL_MEMORY, on disk beyond) while hashed, and written
only when they match. The object is written under its own storage key, replacing whatever corrupt bytes were
there (FileSystemStorage would otherwise pick another name).
"""

import hashlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.files import File

from repository.storage import STORAGE_ERRORS, blob_storage, open_blob_stream

PIECE = 1024 * 1024
SPOOL_MEMORY = 8 * 1024 * 1024


@dataclass(frozen=True)
class PrimaryState:
    ok: bool
    detail: str  # "" when ok; else "missing", "sha256 ... instead of ...", "unreadable: ..."


def primary_check(key: str, sha256: str, size: int) -> PrimaryState:
    """Re-read the primary object under `key` and compare it with the expected sha256 and size."""
    digest = hashlib.sha256()
    length = 0
    try:
        with open_blob_stream(key) as stream:
            while piece := stream.read(PIECE):
                digest.update(piece)
                length += len(piece)
    except FileNotFoundError:
        return PrimaryState(False, "missing")
    except STORAGE_ERRORS as exc:
        return PrimaryState(False, f"unreadable: {exc}")
    if length != size or digest.hexdigest() != sha256:
        return PrimaryState(False, f"{length} bytes with sha256 {digest.hexdigest()} instead of {size} bytes with "
                                   f"sha256 {sha256}")
    return PrimaryState(True, "")


class Mismatch(Exception):
    pass


def spool_verified(pieces: Iterable[bytes], sha256: str, size: int):
    """Copy `pieces` into a temporary file, returned rewound, if they are `size` bytes with `sha256`; else
    raise Mismatch (and keep nothing)."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY, prefix="nbarchive-restore-")
    digest = hashlib.sha256()
    length = 0
    try:
        for piece in pieces:
            digest.update(piece)
            length += len(piece)
            spool.write(piece)
        if length != size or digest.hexdigest() != sha256:
            raise Mismatch(f"{length} bytes with sha256 {digest.hexdigest()} instead of {size} bytes with sha256 "
                           f"{sha256}")
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def stream_pieces(stream, size: int) -> Iterable[bytes]:
    remaining = size
    while remaining > 0:
        piece = stream.read(min(PIECE, remaining))
        if not piece:
            return
        remaining -= len(piece)
        yield piece


def primary_write(key: str, spool) -> None:
    """Write verified bytes to primary storage under exactly `key`. Raises OSError or the storage's error."""
    storage = blob_storage()
    if storage.exists(key):
        storage.delete(key)
    saved = storage.save(key, File(spool, name=key))
    if saved != key:
        storage.delete(saved)
        raise OSError(f"storage wrote {saved} instead of {key}")
