"""Backup targets: a local directory or an S3 bucket (repository/backup/s3_target.py), one interface.

A target stores objects under relative names ("catalog.json", "volumes/<name>.tar", "manifests/<name>.jsonl").
Volumes are append-only: `volume_sink(name)` refuses a name that exists, and a sink becomes visible under its
name only when committed whole (local: written to "<name>.part", fsynced, then linked into place; S3: spooled to
a temporary file, then uploaded — see `S3Target`). Small objects (catalog, manifests) are written at once.

`target_from_settings()` is the configured target (the "backup" storage alias); `target_from_location()` reads
what `restore --from` takes: a directory path or `s3://bucket[/prefix]`.
"""

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings

from repository.backup.errors import BackupObjectMissing, BackupTargetError

CHUNK = 1024 * 1024


class VolumeSink(ABC):
    """Where a volume is written: `file` is a seekable binary file; `commit()` publishes it under its name."""

    file = None
    flush_behind = False  # whether the writer should push the file to disk as it goes (see VolumeWriter)

    @abstractmethod
    def commit(self) -> datetime | None:
        """Make the volume visible in the target; returns its object-lock retention date, if any."""

    @abstractmethod
    def abort(self) -> None:
        """Drop what was written (nothing becomes visible)."""


class BackupTarget(ABC):
    location: str = ""
    storage_class: str = ""

    def __str__(self) -> str:
        return self.location

    @abstractmethod
    def check(self) -> None:
        """Raise BackupTargetError when the target cannot be reached (before any work starts)."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def read_bytes(self, name: str) -> bytes:
        """A small object whole; BackupObjectMissing when there is none."""

    @abstractmethod
    def write_bytes(self, name: str, data: bytes) -> None:
        """Write (or replace) a small object: the catalog or a manifest."""

    @abstractmethod
    def volume_sink(self, name: str) -> VolumeSink: ...

    @abstractmethod
    def open_read(self, name: str):
        """A binary stream of the whole object, read front to back with read(n)."""

    @abstractmethod
    def read_range(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        """The bytes [offset, offset + length) of an object, in pieces."""

    def make_readable(self, names: list[str]) -> list[str]:
        """Ask for objects in cold storage to be restored; return those not readable yet (none for a directory)."""
        return []


class LocalDirectoryTarget(BackupTarget):
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.location = str(self.root)

    def _path(self, name: str) -> Path:
        return self.root / name

    def check(self) -> None:
        if not self.root.is_dir():
            raise BackupTargetError(f"The backup directory {self.location} does not exist.")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise BackupTargetError(f"The backup directory {self.location} is not readable.")

    def check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupTargetError(f"Cannot create the backup directory {self.location}: {exc.strerror}.") from exc
        if not os.access(self.root, os.W_OK):
            raise BackupTargetError(f"The backup directory {self.location} is not writable.")

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def read_bytes(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise BackupObjectMissing(f"{name} is missing from {self.location}.") from None
        except OSError as exc:
            raise BackupTargetError(f"Cannot read {name} in {self.location}: {exc.strerror}.") from exc

    def write_bytes(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        with open(partial, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)

    def volume_sink(self, name: str) -> VolumeSink:
        path = self._path(name)
        if path.exists():
            raise BackupTargetError(f"{name} already exists in {self.location}; volumes are never overwritten.")
        path.parent.mkdir(parents=True, exist_ok=True)
        return _LocalSink(path)

    def open_read(self, name: str):
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise BackupObjectMissing(f"{name} is missing from {self.location}.") from None
        except OSError as exc:
            raise BackupTargetError(f"Cannot read {name} in {self.location}: {exc.strerror}.") from exc

    def read_range(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        with self.open_read(name) as stream:
            stream.seek(offset)
            remaining = length
            while remaining > 0:
                piece = stream.read(min(CHUNK, remaining))
                if not piece:
                    break  # the caller sees the short read in its size check
                remaining -= len(piece)
                yield piece


class _LocalSink(VolumeSink):
    flush_behind = True  # the volume is fsynced at commit anyway; an S3 spool file is read again for the upload

    def __init__(self, path: Path):
        self._path = path
        self._partial = path.with_name(path.name + ".part")
        # Unbuffered: the writer hands over 1 MiB pieces, and a second copy through a buffer only costs time.
        self.file = open(self._partial, "w+b", buffering=0)

    def commit(self) -> datetime | None:
        os.fsync(self.file.fileno())
        self.file.close()
        try:
            # A hard link never replaces an existing name, unlike a rename: append-only even against a race.
            os.link(self._partial, self._path)
        finally:
            self._partial.unlink(missing_ok=True)
        _fsync_directory(self._path.parent)

    def abort(self) -> None:
        self.file.close()
        self._partial.unlink(missing_ok=True)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _s3_options() -> dict:
    """Endpoint and credentials: the "backup" alias's when it is S3, else the primary S3 settings."""
    config = settings.STORAGES.get("backup", {})
    options = config.get("OPTIONS", {}) if "S3Storage" in config.get("BACKEND", "") else {}
    return {
        "endpoint_url": options.get("endpoint_url", settings.S3_ENDPOINT_URL),
        "region_name": options.get("region_name", settings.S3_REGION),
        "access_key": options.get("access_key", settings.S3_ACCESS_KEY_ID),
        "secret_key": options.get("secret_key", settings.S3_SECRET_ACCESS_KEY),
    }


def target_from_settings() -> BackupTarget:
    """The configured backup target: the "backup" storage alias (BACKUP_S3_BUCKET, else VAR_DIR/backup)."""
    config = settings.STORAGES["backup"]
    if "S3Storage" in config["BACKEND"]:
        from repository.backup.s3_target import S3Target

        return S3Target(bucket=config["OPTIONS"]["bucket_name"], prefix=settings.BACKUP_S3_PREFIX, **_s3_options())
    return LocalDirectoryTarget(config["OPTIONS"]["location"])


def target_from_location(location: str) -> BackupTarget:
    """`s3://bucket[/prefix]` (with the configured endpoint and keys) or a directory path."""
    location = location.strip()
    if not location:
        raise BackupTargetError("No backup target given: pass a directory or s3://bucket[/prefix].")
    if location.startswith("s3://"):
        from repository.backup.s3_target import S3Target

        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket:
            raise BackupTargetError(f"{location} names no bucket: use s3://bucket[/prefix].")
        return S3Target(bucket=bucket, prefix=prefix, **_s3_options())
    if "://" in location:
        raise BackupTargetError(f"{location}: only a directory path or s3://bucket[/prefix] can be read.")
    return LocalDirectoryTarget(location)
