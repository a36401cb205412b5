"""An S3 bucket as a backup target (repository/backup/targets.py names the interface).

It reaches S3 only through the door's `Bucket` (repository/integrations/s3/client.py) and turns the door's errors
into the backup tier's (repository/backup/errors.py): BackupObjectMissing, BackupObjectCold and BackupTargetError.

Volumes are assembled in a temporary file (BACKUP_SPOOL_DIR) and uploaded with boto3's managed, multipart
transfer once complete: memory stays at a few parts whatever the volume size, a failed upload is retried from
the file, and a half-written volume never appears in the bucket. A restore downloads a volume the same way before
reading it (`open_read`): disk for one volume, memory for a few parts. Volumes get the storage class
BACKUP_S3_STORAGE_CLASS and, when the bucket has object lock enabled, a retention of BACKUP_S3_OBJECT_LOCK_DAYS;
an endpoint without object lock (or without permission to ask) gets none, and the run says so in the log. The
catalog and manifests stay STANDARD so a restore can read them at once; volumes in an archive class are
restored on request (`make_readable`) before they are read.
"""

import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from django.conf import settings

from repository.backup.errors import BackupObjectCold, BackupObjectMissing, BackupTargetError
from repository.backup.targets import CHUNK, BackupTarget, VolumeSink
from repository.errors import BucketMissing, ObjectArchived, ObjectMissing, StorageError, StorageRefused
from repository.integrations import s3

logger = logging.getLogger(__name__)

# Storage classes whose objects cannot be read before a RestoreObject (GLACIER_IR can: it is not listed).
ARCHIVE_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}


class S3Target(BackupTarget):
    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url=None, region_name=None, access_key=None,
                 secret_key=None):
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.storage_class = settings.BACKUP_S3_STORAGE_CLASS or "STANDARD"
        self.bucket = s3.connect(bucket=bucket, endpoint_url=endpoint_url, region_name=region_name,
                                 access_key=access_key, secret_key=secret_key,
                                 part_size=settings.S3_MULTIPART_CHUNK_SIZE,
                                 concurrency=settings.S3_MULTIPART_CONCURRENCY)
        self._lock_enabled: bool | None = None

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _fail(self, exc: StorageError, what: str) -> BackupTargetError:
        if isinstance(exc, BucketMissing):
            return BackupTargetError(f"The bucket {self.bucket.name} does not exist ({self.location}).")
        if isinstance(exc, ObjectMissing):
            return BackupObjectMissing(f"{what} is missing from {self.location}.")
        if isinstance(exc, ObjectArchived):
            return BackupObjectCold(f"{what} in {self.location} is in cold storage and not restored yet.")
        return BackupTargetError(f"Cannot reach {what} in {self.location}: {exc.answer}")

    def check(self) -> None:
        try:
            self.bucket.check()
        except ObjectMissing as exc:
            raise BackupTargetError(f"The bucket {self.bucket.name} does not exist ({self.location}).") from exc
        except StorageRefused as exc:
            raise BackupTargetError(f"Cannot use the bucket {self.bucket.name}: {exc.answer}") from exc
        except StorageError as exc:
            raise BackupTargetError(f"Cannot reach the S3 endpoint for {self.location}: {exc.answer}") from exc

    def exists(self, name: str) -> bool:
        try:
            self.bucket.head(self._key(name))
        except ObjectMissing:
            return False
        except StorageError as exc:
            raise self._fail(exc, name) from exc
        return True

    def read_bytes(self, name: str) -> bytes:
        try:
            with self.bucket.get(self._key(name)) as body:
                return body.read()
        except StorageError as exc:
            raise self._fail(exc, name) from exc

    def write_bytes(self, name: str, data: bytes) -> None:
        try:
            self.bucket.put(self._key(name), data, storage_class="STANDARD")
        except StorageError as exc:
            raise self._fail(exc, name) from exc

    def volume_sink(self, name: str) -> VolumeSink:
        if self.exists(name):
            raise BackupTargetError(f"{name} already exists in {self.location}; volumes are never overwritten.")
        return _S3Sink(self, name)

    def object_lock_enabled(self) -> bool:
        """Whether the bucket has object lock; False (with a log line) when the endpoint cannot say."""
        if self._lock_enabled is None:
            try:
                enabled = self.bucket.object_lock_enabled()
            except StorageError as exc:
                logger.info("Backup bucket %s: no object lock (%s); volumes are written without retention.",
                            self.bucket.name, exc.answer)
                enabled = False
            self._lock_enabled = enabled and settings.BACKUP_S3_OBJECT_LOCK_DAYS > 0
        return self._lock_enabled

    def upload_volume(self, name: str, path: str) -> datetime | None:
        lock_mode, locked_until = "", None
        if self.object_lock_enabled():
            lock_mode = settings.BACKUP_S3_OBJECT_LOCK_MODE
            locked_until = (datetime.now(UTC) + timedelta(days=settings.BACKUP_S3_OBJECT_LOCK_DAYS)).replace(
                microsecond=0)
        try:
            self.bucket.upload_file(self._key(name), path, storage_class=self.storage_class, lock_mode=lock_mode,
                                    retain_until=locked_until)
        except StorageError as exc:
            raise self._fail(exc, name) from exc
        return locked_until

    def open_read(self, name: str):
        """The object downloaded into a temporary file (BACKUP_SPOOL_DIR; deleted when closed), opened for reading.

        A restore writes each blob to primary storage while it reads the volume; streaming the volume's GET body
        instead would leave that connection idle for as long as a large blob takes to upload, and S3 closes idle
        connections. The download itself is boto3's managed transfer: ranged GETs in parallel, retried.
        """
        spool = tempfile.NamedTemporaryFile(prefix="nbarchive-volume-", suffix=".tar", dir=_spool_dir())
        try:
            self.bucket.download_to(self._key(name), spool)
        except StorageError as exc:
            spool.close()
            raise self._fail(exc, name) from exc
        spool.seek(0)
        return spool

    def read_range(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        if length <= 0:
            return
        try:
            with self.bucket.get(self._key(name), byte_range=(offset, offset + length - 1)) as body:
                yield from body.iter_chunks(CHUNK)
        except StorageError as exc:
            raise self._fail(exc, name) from exc

    def make_readable(self, names: list[str]) -> list[str]:
        pending = []
        for name in names:
            key = self._key(name)
            try:
                head = self.bucket.head(key)
                if head.get("StorageClass") not in ARCHIVE_CLASSES or 'ongoing-request="false"' in head.get(
                        "Restore", ""):
                    continue
                if "Restore" not in head:
                    self.bucket.request_restore(key, days=settings.BACKUP_S3_RESTORE_DAYS,
                                                tier=settings.BACKUP_S3_RESTORE_TIER)
                    head = self.bucket.head(key)
                if 'ongoing-request="false"' not in head.get("Restore", ""):
                    pending.append(name)
            except StorageError as exc:
                raise self._fail(exc, name) from exc
        return pending


def _spool_dir() -> str | None:
    """BACKUP_SPOOL_DIR, made if missing (a fresh volume mount, a new machine), or the system's temporary folder."""
    if not settings.BACKUP_SPOOL_DIR:
        return None
    os.makedirs(settings.BACKUP_SPOOL_DIR, exist_ok=True)
    return settings.BACKUP_SPOOL_DIR


class _S3Sink(VolumeSink):
    def __init__(self, target: S3Target, name: str):
        self._target = target
        self._name = name
        self.file = tempfile.NamedTemporaryFile(prefix="nbarchive-volume-", suffix=".tar", dir=_spool_dir(),
                                                buffering=0)

    def commit(self) -> datetime | None:
        self.file.flush()
        try:
            return self._target.upload_volume(self._name, self.file.name)
        finally:
            self.file.close()  # deletes the spool file

    def abort(self) -> None:
        self.file.close()
