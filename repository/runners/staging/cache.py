"""The checksum cache, and the one way bytes reach the disk here: written aside, verified, renamed into place.

The cache holds fetched references keyed by sha256, at ``cache_dir/<sha[:2]>/<sha>``
(``cache_dir_from_settings``: ``STAGING_CACHE_DIR``, by default ``<VAR_DIR>/staging-cache``). An entry is only
ever created by ``VerifiedWriter.commit``: the bytes go to a temporary file beside the final name while they are
hashed and counted, and the file is fsynced, made read-only (0o444) and renamed into place only after the caller
checked the checksum, so concurrent runs see either no entry or a whole, verified one. ``usable_cache_entry``
trusts an entry only if it still looks like that (a read-only regular file of the declared size).
``link_or_copy`` places an entry in the working folder: a hard link, or a verified copy when linking is
impossible. ``VerifiedWriter.write`` raises ``StagingError`` past its size limit; disk errors are ``OSError``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from repository.runners.staging.errors import StagingError

CHUNK_SIZE = 1024 * 1024


def cache_dir_from_settings() -> Path:
    return Path(getattr(settings, "STAGING_CACHE_DIR", None) or Path(settings.VAR_DIR) / "staging-cache")


def cache_entry(cache_dir: Path, sha256: str) -> Path:
    return cache_dir / sha256[:2] / sha256


def usable_cache_entry(entry: Path, declared_size: int) -> bool:
    # Entries are verified when written and kept read-only; the cheap checks below only catch an entry that was
    # tampered with or truncated by hand (it is then fetched again and replaced, never trusted).
    try:
        info = os.lstat(entry)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == declared_size and not info.st_mode & 0o222


class VerifiedWriter:
    """Writes to a temporary file, hashing and counting; `commit()` renames it into place, read-only."""

    def __init__(self, handle, temp_path: Path, label: str, limit: int | None):
        self._handle = handle
        self._temp_path = temp_path
        self._label = label
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0
        self.committed = False

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._limit is not None and self.size > self._limit:
            raise StagingError(
                self._label,
                f"the file is larger than the declared {self._limit} bytes; the file changed at the source or the "
                "declared size is wrong.",
            )
        self._hash.update(chunk)
        self._handle.write(chunk)

    def commit(self, final_path: Path) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())  # the entry must be whole on disk before its name says it is verified
        self._handle.close()
        os.chmod(self._temp_path, 0o444)
        # Atomic on one filesystem: readers see the old entry, or the new one whole. Two runs filling the same
        # cache entry both write verified identical bytes, so the later rename is harmless.
        os.replace(self._temp_path, final_path)
        self.committed = True


@contextmanager
def verified_write(directory: Path, label: str, *, limit: int | None) -> Iterator[VerifiedWriter]:
    # The temporary file sits beside its final name, so the rename never crosses a filesystem.
    descriptor, temp_name = tempfile.mkstemp(dir=directory, prefix=".staging-", suffix=".part")
    temp_path = Path(temp_name)
    handle = os.fdopen(descriptor, "wb")
    writer = VerifiedWriter(handle, temp_path, label, limit)
    try:
        yield writer
    finally:
        if not writer.committed:
            handle.close()
            temp_path.unlink(missing_ok=True)


def link_or_copy(entry: Path, target: Path, label: str) -> None:
    # A hard link shares the entry's inode, so it is read-only like the entry and costs no space. That is safe
    # because the kernel runs as another, unprivileged uid that cannot chmod the worker's files.
    try:
        os.link(entry, target)
        return
    except OSError:
        pass  # another filesystem, or links not supported: copy instead
    with verified_write(target.parent, label, limit=None) as writer:
        with open(entry, "rb") as source:
            shutil.copyfileobj(source, writer, CHUNK_SIZE)
        writer.commit(target)
