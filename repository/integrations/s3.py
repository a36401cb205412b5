"""S3 through boto3/botocore: with s3_backup.py (the backup tier's bucket), the only module that imports them.

Errors. Whatever the SDK raises when S3 fails or refuses (botocore's ClientError and BotoCoreError, boto3's and
s3transfer's transfer errors) is turned into ours here: ObjectMissing for an object or bucket that is not there,
StorageError otherwise (both in repository/errors.py; `detail` says what was being done and what S3 answered).
Code outside this door catches STORAGE_ERRORS: those, or the OSError of a local directory (FileSystemStorage).
The Storage API's own convention stays: opening a missing object raises FileNotFoundError, as a directory does.

`S3Storage` is django-storages' S3Storage with that translation on every Storage method and on reading an opened
file, configured with plain numbers (`multipart_chunksize`, `max_concurrency`): settings.py never imports boto3.

Beyond the Storage API, the few S3 operations repository/storage.py needs when the "blobs" alias is an S3Storage:
a streamed upload that sends SHA-256 checksums, the checksum S3 reports for an object, a server-side copy that
never overwrites, a presigned GET URL, a streamed read of an object, and listings of old temporary objects and
unfinished multipart uploads. Keys passed in and returned are storage names (relative to the storage's
`location`), as everywhere else.
"""

import base64
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError
from s3transfer.utils import ChunksizeAdjuster
from storages.backends import s3 as django_storages_s3
from storages.utils import clean_name

from repository.errors import ObjectMissing, StorageError

# What the SDK raises when S3 fails or refuses: botocore's errors, boto3's transfer errors (upload_file wraps a
# ClientError in S3UploadFailedError) and s3transfer's when a download ran out of retries.
SDK_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, Boto3Error, RetriesExceededError)

# What a storage operation raises when it fails, once translated: StorageError (S3) or OSError (a local directory:
# disk full, permissions). No library type: catch this, never the SDK's.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (StorageError, OSError)

# CopyObject copies at most 5 GiB in one request; a larger object is copied in parts (UploadPartCopy).
SINGLE_COPY_MAX = 5 * 1024**3

CHECKSUM_ARGS = {"ChecksumAlgorithm": "SHA256"}
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


def error_code(exc: BaseException) -> str:
    """S3's error code ("NoSuchKey", "AccessDenied", ...) of a ClientError; "" for any other error."""
    if not isinstance(exc, ClientError):
        return ""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    """One line for people: S3's code and message, or the first line of the SDK's own message."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404 or error_code(exc) in _MISSING


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run the block, turning the SDK's errors into ObjectMissing or StorageError, saying `what` was being done."""
    try:
        yield
    except SDK_ERRORS as exc:
        if isinstance(exc, ClientError) and _not_found(exc):
            raise ObjectMissing(f"{what}: not found in S3 ({error_message(exc)})") from exc
        raise StorageError(f"{what}: {error_message(exc)}") from exc


def transfer_config(*, part_size: int, concurrency: int) -> TransferConfig:
    """boto3's managed-transfer settings: parts of `part_size` bytes, `concurrency` of them at once."""
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=concurrency)
    # Parts read from a non-seekable upload stream wait in memory; bound how many. boto3's TransferConfig does not
    # take this as an argument (s3transfer's own class does), but s3transfer reads the attribute.
    config.max_in_memory_upload_chunks = concurrency + 2
    return config


class S3File(django_storages_s3.S3File):
    """django-storages' S3File, whose download on first read raises our errors."""

    def _get_file(self):
        with translated(f"reading {self.name}"):
            return super()._get_file()

    file = property(_get_file, django_storages_s3.S3File._set_file)

    def close(self):
        with translated(f"closing {self.name}"):
            super().close()


class S3Storage(django_storages_s3.S3Storage):
    """django-storages' S3Storage raising our errors (FileNotFoundError for a missing object, as the Storage API
    does; StorageError and ObjectMissing otherwise). `multipart_chunksize` and `max_concurrency` set the part size
    and parallelism of uploads and downloads; an explicit `transfer_config` still wins."""

    def get_default_settings(self):
        return {**super().get_default_settings(), "multipart_chunksize": None, "max_concurrency": None}

    def __init__(self, **options):
        super().__init__(**options)
        if options.get("transfer_config") is None and self.multipart_chunksize:
            self.transfer_config = transfer_config(part_size=self.multipart_chunksize,
                                                   concurrency=self.max_concurrency or 10)

    def _open(self, name, mode="rb"):
        key = self._normalize_name(clean_name(name))
        with translated(f"opening {name}"):
            try:
                return S3File(key, mode, self)
            except ClientError as exc:
                if _not_found(exc):
                    raise FileNotFoundError(f"File does not exist: {key}") from exc
                raise

    def _save(self, name, content):
        with translated(f"writing {name}"):
            return super()._save(name, content)

    def delete(self, name):
        with translated(f"deleting {name}"):
            super().delete(name)

    def exists(self, name):
        with translated(f"looking for {name}"):
            return super().exists(name)

    def listdir(self, name):
        with translated(f"listing {name}"):
            return super().listdir(name)

    def size(self, name):
        with translated(f"reading the size of {name}"):
            return super().size(name)

    def get_modified_time(self, name):
        with translated(f"reading the time of {name}"):
            return super().get_modified_time(name)

    def url(self, name, parameters=None, expire=None, http_method=None):
        with translated(f"signing a URL for {name}"):
            return super().url(name, parameters=parameters, expire=expire, http_method=http_method)


def is_s3(storage) -> bool:
    return isinstance(storage, django_storages_s3.S3Storage)


def _client(storage: S3Storage):
    return storage.connection.meta.client


def _key(storage: S3Storage, name: str) -> str:
    return storage._normalize_name(clean_name(name))


def _name(storage: S3Storage, key: str) -> str:
    location = storage.location.strip("/")
    return key[len(location) + 1:] if location and key.startswith(location + "/") else key


def b64_sha256(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def upload_part_size(storage: S3Storage) -> int:
    """The part size boto3 uses for a stream of unknown length (the configured one, within S3's limits). A
    non-seekable stream is cut into parts of exactly this size, so a caller can hash the same parts."""
    return ChunksizeAdjuster().adjust_chunksize(storage.transfer_config.multipart_chunksize)


def upload(storage: S3Storage, name: str, stream) -> None:
    """Stream `stream` to `name` with boto3's managed (multipart, parallel) transfer, sending a SHA-256
    checksum with every part (or with the single PUT): S3 refuses a part whose bytes do not match it.

    boto3 computes those checksums from the bytes it sends, not the caller's: what S3 then reports for the object
    is an independent account of what it received, which the caller compares with its own hashes."""
    params = {"ContentType": "application/octet-stream", **storage.get_object_parameters(name), **CHECKSUM_ARGS}
    if storage.default_acl and "ACL" not in params:
        params["ACL"] = storage.default_acl
    with translated(f"uploading {name}"):
        storage.bucket.Object(_key(storage, name)).upload_fileobj(stream, ExtraArgs=params,
                                                                  Config=storage.transfer_config)


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    # The SHA-256 checksum S3 keeps for the object, base64, without a "-<parts>" suffix; None when it keeps none.
    sha256: str | None
    # True when that checksum is a multipart object's composite (the SHA-256 of its parts' SHA-256 digests).
    composite: bool
    part_count: int | None
    last_modified: datetime


def object_info(storage: S3Storage, name: str, *, part_number: int | None = None) -> ObjectInfo | None:
    """HEAD with checksums; None when there is no such object."""
    extra = {"PartNumber": part_number} if part_number else {}
    with translated(f"reading the checksum of {name}"):
        try:
            head = _client(storage).head_object(Bucket=storage.bucket_name, Key=_key(storage, name),
                                                ChecksumMode="ENABLED", **extra)
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
    reported = head.get("ChecksumSHA256")
    composite = head.get("ChecksumType") == "COMPOSITE" or bool(reported and "-" in reported)
    return ObjectInfo(size=head["ContentLength"], sha256=reported.split("-")[0] if reported else None,
                      composite=composite, part_count=head.get("PartsCount"), last_modified=head["LastModified"])


def copy_new(storage: S3Storage, source: str, target: str, *, size: int) -> str | None:
    """Server-side copy of `source` to `target`, only if `target` does not exist; return the SHA-256 checksum
    (base64) S3 computed for the copy, None when it reported none. Raises FileExistsError when `target`
    exists.

    Up to 5 GiB: one CopyObject with If-None-Match: * (S3 refuses to overwrite), asking for a full-object SHA-256
    of the copy. Larger: boto3's managed multipart copy with the source's part size, so the copy's composite
    checksum is comparable with the source's; s3transfer cannot send If-None-Match, so the caller's existence
    check is what guards it.
    """
    client = _client(storage)
    copy_source = {"Bucket": storage.bucket_name, "Key": _key(storage, source)}
    if size <= SINGLE_COPY_MAX:
        with translated(f"copying {source} to {target}"):
            try:
                result = client.copy_object(Bucket=storage.bucket_name, Key=_key(storage, target),
                                            CopySource=copy_source, MetadataDirective="COPY", IfNoneMatch="*",
                                            **CHECKSUM_ARGS)
            except ClientError as exc:
                if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                    raise FileExistsError(target) from exc
                raise
        return result.get("CopyObjectResult", {}).get("ChecksumSHA256")
    first_part = object_info(storage, source, part_number=1)
    part_size = first_part.size if first_part and first_part.part_count else upload_part_size(storage)
    config = TransferConfig(multipart_threshold=1, multipart_chunksize=part_size,
                            max_concurrency=storage.transfer_config.max_request_concurrency)
    with translated(f"copying {source} to {target}"):
        client.copy(copy_source, storage.bucket_name, _key(storage, target), ExtraArgs=dict(CHECKSUM_ARGS),
                    Config=config)
    info = object_info(storage, target)
    return info.sha256 if info else None


_presigning_clients: "weakref.WeakKeyDictionary[S3Storage, object]" = weakref.WeakKeyDictionary()


def _presigning_client(storage: S3Storage):
    # botocore still presigns S3 URLs with Signature Version 2 unless told otherwise; AWS regions opened since 2014
    # refuse those, and version 4 is the only one that honours an expiry (at most 7 days).
    client = _presigning_clients.get(storage)
    if client is None:
        config = storage.client_config.merge(Config(signature_version="s3v4"))
        client = storage._create_session().client("s3", region_name=storage.region_name, use_ssl=storage.use_ssl,
                                                  endpoint_url=storage.endpoint_url, config=config,
                                                  verify=storage.verify)
        _presigning_clients[storage] = client
    return client


def presigned_get_url(storage: S3Storage, name: str, *, content_disposition: str, ttl: int) -> str:
    with translated(f"signing a URL for {name}"):
        return _presigning_client(storage).generate_presigned_url("get_object", ExpiresIn=ttl, Params={
            "Bucket": storage.bucket_name, "Key": _key(storage, name),
            "ResponseContentDisposition": content_disposition, "ResponseContentType": "application/octet-stream",
        })


class ObjectStream:
    """An object's contents read front to back as they arrive (read, readinto; a context manager), errors
    translated."""

    def __init__(self, body, name: str):
        self._body = body
        self._name = name

    def read(self, size: int | None = -1) -> bytes:
        with translated(f"reading {self._name}"):
            return self._body.read(None if size is None or size < 0 else size)

    def readinto(self, buffer) -> int:
        with translated(f"reading {self._name}"):
            return self._body.readinto(buffer)

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_stream(storage: S3Storage, name: str) -> ObjectStream:
    """The object as a stream read front to back, without holding it whole in memory (django-storages' S3File
    downloads the whole object on the first read). Raises FileNotFoundError for a missing object, like
    FileSystemStorage."""
    with translated(f"opening {name}"):
        try:
            body = _client(storage).get_object(Bucket=storage.bucket_name, Key=_key(storage, name))["Body"]
        except ClientError as exc:
            if _not_found(exc):
                raise FileNotFoundError(name) from exc
            raise
    return ObjectStream(body, name)


def objects_older_than(storage: S3Storage, prefix: str, before: datetime) -> Iterator[str]:
    """Names of the objects under `prefix` last modified before `before`."""
    with translated(f"listing {prefix}"):
        paginator = _client(storage).get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=_key(storage, prefix)):
            for item in page.get("Contents", []):
                if item["LastModified"] < before:
                    yield _name(storage, item["Key"])


def abort_uploads_older_than(storage: S3Storage, prefix: str, before: datetime, *, dry_run: bool = False) -> int:
    """Abort the multipart uploads under `prefix` started before `before` (a process that died mid-upload
    leaves its parts behind, invisible but stored); return how many."""
    client = _client(storage)
    aborted = 0
    with translated(f"aborting the unfinished uploads under {prefix}"):
        paginator = client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=_key(storage, prefix)):
            for upload_item in page.get("Uploads", []):
                if upload_item["Initiated"] < before:
                    if not dry_run:
                        client.abort_multipart_upload(Bucket=storage.bucket_name, Key=upload_item["Key"],
                                                      UploadId=upload_item["UploadId"])
                    aborted += 1
    return aborted
