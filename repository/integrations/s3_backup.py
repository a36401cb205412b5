"""S3 for the backup tier: a bucket as a backup target (repository/backup/targets.py names the interface).

With repository/integrations/s3.py, the only module that imports boto3 or botocore. It turns the SDK's errors
into the backup tier's (repository/backup/errors.py): BackupObjectMissing, BackupObjectCold and
BackupTargetError.

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
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings

from repository.backup.errors import BackupObjectCold, BackupObjectMissing, BackupTargetError
from repository.backup.targets import CHUNK, BackupTarget, VolumeSink
from repository.integrations.s3 import SDK_ERRORS, error_code, error_message

logger = logging.getLogger(__name__)

# Storage classes whose objects cannot be read before a RestoreObject (GLACIER_IR can: it is not listed).
ARCHIVE_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


class S3Target(BackupTarget):
    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url=None, region_name=None, access_key=None,
                 secret_key=None):
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.storage_class = settings.BACKUP_S3_STORAGE_CLASS or "STANDARD"
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region_name, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120),
        )
        self._lock_enabled: bool | None = None

    def _key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _fail(self, exc: Exception, what: str):
        if isinstance(exc, ClientError) and error_code(exc) in _MISSING:
            if error_code(exc) == "NoSuchBucket":
                return BackupTargetError(f"The bucket {self.bucket} does not exist ({self.location}).")
            return BackupObjectMissing(f"{what} is missing from {self.location}.")
        if isinstance(exc, ClientError) and error_code(exc) == "InvalidObjectState":
            return BackupObjectCold(f"{what} in {self.location} is in cold storage and not restored yet.")
        return BackupTargetError(f"Cannot reach {what} in {self.location}: {error_message(exc)}")

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise BackupTargetError(f"The bucket {self.bucket} does not exist ({self.location}).") from exc
            raise BackupTargetError(f"Cannot use the bucket {self.bucket}: {error_message(exc)}") from exc
        except SDK_ERRORS as exc:
            raise BackupTargetError(f"Cannot reach the S3 endpoint for {self.location}: {error_message(exc)}") from exc

    def exists(self, name: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                return False
            raise self._fail(exc, name) from exc
        except SDK_ERRORS as exc:
            raise self._fail(exc, name) from exc
        return True

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"].read()
        except SDK_ERRORS as exc:
            raise self._fail(exc, name) from exc

    def write_bytes(self, name: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data, StorageClass="STANDARD",
                                   ChecksumAlgorithm="SHA256")
        except SDK_ERRORS as exc:
            raise self._fail(exc, name) from exc

    def volume_sink(self, name: str) -> VolumeSink:
        if self.exists(name):
            raise BackupTargetError(f"{name} already exists in {self.location}; volumes are never overwritten.")
        return _S3Sink(self, name)

    def object_lock_enabled(self) -> bool:
        """Whether the bucket has object lock; False (with a log line) when the endpoint cannot say."""
        if self._lock_enabled is None:
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
                enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except SDK_ERRORS as exc:
                logger.info("Backup bucket %s: no object lock (%s); volumes are written without retention.",
                            self.bucket, error_message(exc))
                enabled = False
            self._lock_enabled = enabled and settings.BACKUP_S3_OBJECT_LOCK_DAYS > 0
        return self._lock_enabled

    def upload_volume(self, name: str, path: str) -> datetime | None:
        extra = {"StorageClass": self.storage_class}
        locked_until = None
        if self.object_lock_enabled():
            locked_until = (datetime.now(UTC) + timedelta(days=settings.BACKUP_S3_OBJECT_LOCK_DAYS)).replace(
                microsecond=0)
            extra |= {"ObjectLockMode": settings.BACKUP_S3_OBJECT_LOCK_MODE,
                      "ObjectLockRetainUntilDate": locked_until}
        config = TransferConfig(multipart_threshold=settings.S3_MULTIPART_CHUNK_SIZE,
                                multipart_chunksize=settings.S3_MULTIPART_CHUNK_SIZE,
                                max_concurrency=settings.S3_MULTIPART_CONCURRENCY)
        try:
            self.client.upload_file(path, self.bucket, self._key(name), ExtraArgs=extra, Config=config)
        except SDK_ERRORS as exc:
            raise self._fail(exc, name) from exc
        return locked_until

    def open_read(self, name: str):
        """The object downloaded into a temporary file (BACKUP_SPOOL_DIR; deleted when closed), opened for reading.

        A restore writes each blob to primary storage while it reads the volume; streaming the volume's GET body
        instead would leave that connection idle for as long as a large blob takes to upload, and S3 closes idle
        connections. The download itself is boto3's managed transfer: ranged GETs in parallel, retried.
        """
        spool = tempfile.NamedTemporaryFile(prefix="nbarchive-volume-", suffix=".tar",
                                            dir=settings.BACKUP_SPOOL_DIR or None)
        config = TransferConfig(multipart_chunksize=settings.S3_MULTIPART_CHUNK_SIZE,
                                max_concurrency=settings.S3_MULTIPART_CONCURRENCY)
        try:
            self.client.download_fileobj(self.bucket, self._key(name), spool, Config=config)
        except SDK_ERRORS as exc:
            spool.close()
            raise self._fail(exc, name) from exc
        spool.seek(0)
        return spool

    def read_range(self, name: str, offset: int, length: int) -> Iterator[bytes]:
        if length <= 0:
            return
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(name),
                                          Range=f"bytes={offset}-{offset + length - 1}")["Body"]
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()
        except SDK_ERRORS as exc:
            raise self._fail(exc, name) from exc

    def make_readable(self, names: list[str]) -> list[str]:
        pending = []
        for name in names:
            key = self._key(name)
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=key)
                if head.get("StorageClass") not in ARCHIVE_CLASSES or 'ongoing-request="false"' in head.get(
                        "Restore", ""):
                    continue
                if "Restore" not in head:
                    self._request_restore(key)
                    head = self.client.head_object(Bucket=self.bucket, Key=key)
                if 'ongoing-request="false"' not in head.get("Restore", ""):
                    pending.append(name)
            except SDK_ERRORS as exc:
                raise self._fail(exc, name) from exc
        return pending

    def _request_restore(self, key: str) -> None:
        try:
            self.client.restore_object(Bucket=self.bucket, Key=key, RestoreRequest={
                "Days": settings.BACKUP_S3_RESTORE_DAYS,
                "GlacierJobParameters": {"Tier": settings.BACKUP_S3_RESTORE_TIER}})
        except ClientError as exc:
            if error_code(exc) != "RestoreAlreadyInProgress":
                raise


class _S3Sink(VolumeSink):
    def __init__(self, target: S3Target, name: str):
        self._target = target
        self._name = name
        self.file = tempfile.NamedTemporaryFile(prefix="nbarchive-volume-", suffix=".tar",
                                                dir=settings.BACKUP_SPOOL_DIR or None, buffering=0)

    def commit(self) -> datetime | None:
        self.file.flush()
        try:
            return self._target.upload_volume(self._name, self.file.name)
        finally:
            self.file.close()  # deletes the spool file

    def abort(self) -> None:
        self.file.close()

