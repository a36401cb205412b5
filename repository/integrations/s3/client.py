"""The door to S3: the only module that imports boto3, botocore, s3transfer and django-storages' S3 backend.

Every call into the SDK is made here, and whatever it raises (botocore's ClientError and BotoCoreError, boto3's
transfer errors, s3transfer's when a download ran out of retries) leaves as ours (repository/errors.py), with
`detail` saying what was being done and `answer` what S3 said:
- ObjectMissing: no such object (404, NoSuchKey, NotFound); BucketMissing, an ObjectMissing: no such bucket;
- ObjectArchived: an object in an archive storage class that is not restored (InvalidObjectState);
- ObjectExists: a write that must not overwrite found the object there (`Bucket.copy_if_absent`);
- StorageRefused: any other answer of S3 (AccessDenied, SlowDown, ...);
- StorageError: S3 did not answer (no connection, a timeout, no credentials, retries spent) or a transfer failed.
The Storage API's convention stays: S3Storage opening a missing object raises FileNotFoundError, as a directory does.

What is here: `S3Storage`, `S3File` (django-storages' classes, translating on every Storage method and read,
configured with plain numbers, `multipart_chunksize` and `max_concurrency`, so the settings never import boto3);
`Bucket` (one bucket through one client, a method per S3 request or managed transfer; keys in, plain values out),
`bucket_of(storage)`, `connect()`; what else needs an S3Storage's insides (`is_s3`, `storage_key`/`storage_name`,
`upload_parameters`, `upload_part_size`, `presigned_url`).
"""

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError
from s3transfer.utils import ChunksizeAdjuster
from storages.backends import s3 as django_storages_s3
from storages.utils import clean_name

from repository.errors import (
    BucketMissing,
    ObjectArchived,
    ObjectExists,
    ObjectMissing,
    StorageError,
    StorageRefused,
)

# What a storage operation raises when it fails, once translated: StorageError (S3) or OSError (a local directory:
# disk full, permissions). No library type: catch this, never the SDK's.
STORAGE_ERRORS: tuple[type[BaseException], ...] = (StorageError, OSError)

# What the SDK raises when S3 fails or refuses: botocore's errors, boto3's transfer errors (upload_file wraps a
# ClientError in S3UploadFailedError) and s3transfer's when a download ran out of retries.
_SDK_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, Boto3Error, RetriesExceededError)

_CHECKSUM_ARGS = {"ChecksumAlgorithm": "SHA256"}
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_PRECONDITION_FAILED = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _answer(exc: BaseException) -> str:
    """One line for people: S3's code and message, or the first line of the SDK's own message."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404 or _code(exc) in _MISSING


def _ours(exc: BaseException, what: str, missing: type[ObjectMissing]) -> StorageError:
    answer = _answer(exc)
    if not isinstance(exc, ClientError):
        return StorageError(f"{what}: {answer}", answer=answer)
    if _not_found(exc):
        missing = BucketMissing if _code(exc) == "NoSuchBucket" else missing
        return missing(f"{what}: not found in S3 ({answer})", answer=answer)
    if _code(exc) == "InvalidObjectState":
        return ObjectArchived(f"{what}: {answer}", answer=answer)
    return StorageRefused(f"{what}: {answer}", answer=answer)


@contextmanager
def _translated(what: str, *, missing: type[ObjectMissing] = ObjectMissing) -> Iterator[None]:
    """Run the block, turning the SDK's errors into ours, saying `what` was being done; a 404 raises `missing`."""
    try:
        yield
    except _SDK_ERRORS as exc:
        raise _ours(exc, what, missing) from exc


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
        with _translated(f"reading {self.name}"):
            return super()._get_file()

    file = property(_get_file, django_storages_s3.S3File._set_file)

    def close(self):
        with _translated(f"closing {self.name}"):
            super().close()


class S3Storage(django_storages_s3.S3Storage):
    """django-storages' S3Storage raising our errors (FileNotFoundError for a missing object, as the Storage API
    does; StorageError and its kinds otherwise). `multipart_chunksize` and `max_concurrency` set the part size
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
        with _translated(f"opening {name}"):
            try:
                return S3File(key, mode, self)
            except ClientError as exc:
                if _not_found(exc):
                    raise FileNotFoundError(f"File does not exist: {key}") from exc
                raise

    def _save(self, name, content):
        with _translated(f"writing {name}"):
            return super()._save(name, content)

    def delete(self, name):
        with _translated(f"deleting {name}"):
            super().delete(name)

    def exists(self, name):
        with _translated(f"looking for {name}"):
            return super().exists(name)

    def listdir(self, name):
        with _translated(f"listing {name}"):
            return super().listdir(name)

    def size(self, name):
        with _translated(f"reading the size of {name}"):
            return super().size(name)

    def get_modified_time(self, name):
        with _translated(f"reading the time of {name}"):
            return super().get_modified_time(name)

    def url(self, name, parameters=None, expire=None, http_method=None):
        with _translated(f"signing a URL for {name}"):
            return super().url(name, parameters=parameters, expire=expire, http_method=http_method)


class ObjectStream:
    """An object's contents read front to back as they arrive (read, readinto, iter_chunks; a context manager),
    errors translated."""

    def __init__(self, body, name: str):
        self._body = body
        self._name = name

    def read(self, size: int | None = -1) -> bytes:
        with _translated(f"reading {self._name}"):
            return self._body.read(None if size is None or size < 0 else size)

    def readinto(self, buffer) -> int:
        with _translated(f"reading {self._name}"):
            return self._body.readinto(buffer)

    def iter_chunks(self, size: int) -> Iterator[bytes]:
        with _translated(f"reading {self._name}"):
            yield from self._body.iter_chunks(size)

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class Bucket:
    """One bucket through one boto3 client: a method per S3 request or managed transfer, keys in, plain values out
    (S3's response fields, as dicts), our errors only. `what` says what was being done, for the error's detail.
    Every write asks S3 to check a SHA-256 checksum of what it receives, except `upload_file`: its parts carry
    the SDK's default checksum."""

    def __init__(self, client, name: str, transfer: TransferConfig):
        self._client = client
        self.name = name
        self._transfer = transfer

    def check(self, *, what: str = "") -> None:
        """HEAD the bucket: BucketMissing when there is none."""
        with _translated(what or f"reaching the bucket {self.name}", missing=BucketMissing):
            self._client.head_bucket(Bucket=self.name)

    def head(self, key: str, *, checksums: bool = False, part_number: int | None = None, what: str = "") -> dict:
        """HEAD an object (or one part of it): ContentLength, StorageClass, Restore, with `checksums` ChecksumSHA256
        and ChecksumType, ..."""
        extra = {"ChecksumMode": "ENABLED"} if checksums else {}
        if part_number:
            extra["PartNumber"] = part_number
        with _translated(what or f"looking for {key}"):
            return self._client.head_object(Bucket=self.name, Key=key, **extra)

    def get(self, key: str, *, byte_range: tuple[int, int] | None = None, name: str = "") -> ObjectStream:
        """GET an object, or its bytes first..last of `byte_range`, read as it arrives. `name` is what messages
        call it (default: the key)."""
        extra = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
        with _translated(f"opening {name or key}"):
            body = self._client.get_object(Bucket=self.name, Key=key, **extra)["Body"]
        return ObjectStream(body, name or key)

    def put(self, key: str, data: bytes, *, storage_class: str = "STANDARD", what: str = "") -> None:
        with _translated(what or f"writing {key}"):
            self._client.put_object(Bucket=self.name, Key=key, Body=data, StorageClass=storage_class,
                                    **_CHECKSUM_ARGS)

    def copy_if_absent(self, source: str, target: str, *, what: str = "") -> str | None:
        """One CopyObject (at most 5 GiB) with If-None-Match: * (S3 refuses to overwrite: ObjectExists), asking for
        a full-object SHA-256 of the copy; returns it (base64), None when S3 reports none."""
        what = what or f"copying {source} to {target}"
        with _translated(what):
            try:
                result = self._client.copy_object(Bucket=self.name, Key=target, MetadataDirective="COPY",
                                                  CopySource={"Bucket": self.name, "Key": source}, IfNoneMatch="*",
                                                  **_CHECKSUM_ARGS)
            except ClientError as exc:
                if _code(exc) in _PRECONDITION_FAILED:
                    raise ObjectExists(f"{what}: {target} exists ({_answer(exc)})", answer=_answer(exc)) from exc
                raise
        return result.get("CopyObjectResult", {}).get("ChecksumSHA256")

    def copy_in_parts(self, source: str, target: str, *, part_size: int, what: str = "") -> None:
        """boto3's managed multipart copy (UploadPartCopy) in parts of `part_size`, which cannot send If-None-Match:
        it overwrites."""
        config = TransferConfig(multipart_threshold=1, multipart_chunksize=part_size,
                                max_concurrency=self._transfer.max_request_concurrency)
        with _translated(what or f"copying {source} to {target}"):
            self._client.copy({"Bucket": self.name, "Key": source}, self.name, target,
                              ExtraArgs=dict(_CHECKSUM_ARGS), Config=config)

    def upload_stream(self, key: str, stream, *, params: dict, what: str = "") -> None:
        """boto3's managed transfer of a binary stream (multipart and parallel past the part size). `params` are
        PutObject's (ContentType, ACL, ...); the SHA-256 is boto3's, computed from the bytes it sends."""
        with _translated(what or f"uploading {key}"):
            self._client.upload_fileobj(stream, self.name, key, ExtraArgs={**params, **_CHECKSUM_ARGS},
                                        Config=self._transfer)

    def upload_file(self, key: str, path: str, *, storage_class: str, lock_mode: str = "", retain_until=None,
                    what: str = "") -> None:
        """boto3's managed transfer of a local file, in `storage_class`, under object lock `lock_mode` until
        `retain_until` when given (the bucket must have object lock)."""
        extra = {"StorageClass": storage_class}
        if lock_mode:
            extra |= {"ObjectLockMode": lock_mode, "ObjectLockRetainUntilDate": retain_until}
        with _translated(what or f"uploading {key}"):
            self._client.upload_file(path, self.name, key, ExtraArgs=extra, Config=self._transfer)

    def download_to(self, key: str, file, *, what: str = "") -> None:
        """boto3's managed download into an open binary file: ranged GETs in parallel past 8 MiB, retried."""
        config = TransferConfig(multipart_chunksize=self._transfer.multipart_chunksize,
                                max_concurrency=self._transfer.max_request_concurrency)
        with _translated(what or f"downloading {key}"):
            self._client.download_fileobj(self.name, key, file, Config=config)

    def request_restore(self, key: str, *, days: int, tier: str, what: str = "") -> None:
        """Ask for an archived object to be readable for `days` (RestoreObject); one already under way counts."""
        with _translated(what or f"restoring {key}"):
            try:
                self._client.restore_object(Bucket=self.name, Key=key, RestoreRequest={
                    "Days": days, "GlacierJobParameters": {"Tier": tier}})
            except ClientError as exc:
                if _code(exc) != "RestoreAlreadyInProgress":
                    raise

    def object_lock_enabled(self, *, what: str = "") -> bool:
        """Whether the bucket has object lock. An endpoint without it answers with an error."""
        with _translated(what or f"reading the object lock configuration of {self.name}"):
            answer = self._client.get_object_lock_configuration(Bucket=self.name)
        return answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    def list_objects(self, prefix: str, *, what: str = "") -> Iterator[dict]:
        """The objects under `prefix` (ListObjectsV2's Contents: Key, LastModified, Size, ...)."""
        with _translated(what or f"listing {prefix}"):
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
                yield from page.get("Contents", [])

    def list_uploads(self, prefix: str, *, what: str = "") -> Iterator[dict]:
        """The unfinished multipart uploads under `prefix` (ListMultipartUploads' Uploads: Key, UploadId,
        Initiated)."""
        with _translated(what or f"listing the unfinished uploads under {prefix}"):
            for page in self._client.get_paginator("list_multipart_uploads").paginate(Bucket=self.name,
                                                                                      Prefix=prefix):
                yield from page.get("Uploads", [])

    def abort_upload(self, key: str, upload_id: str, *, what: str = "") -> None:
        with _translated(what or f"aborting the upload of {key}"):
            self._client.abort_multipart_upload(Bucket=self.name, Key=key, UploadId=upload_id)

    def request(self, operation: str, *, what: str, **params) -> dict:
        """One S3 request on this bucket by the SDK's name (create_multipart_upload, ...), errors translated."""
        with _translated(what):
            return getattr(self._client, operation)(Bucket=self.name, **params)


def connect(*, bucket: str, part_size: int, concurrency: int, endpoint_url: str | None = None,
            region_name: str | None = None, access_key: str | None = None, secret_key: str | None = None) -> Bucket:
    """A bucket through a client of its own: up to 5 attempts (standard retries), 10 s to connect, 120 s to read;
    managed transfers in parts of `part_size`, `concurrency` at once."""
    with _translated(f"connecting to S3 for the bucket {bucket}"):
        client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region_name, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=120),
        )
    return Bucket(client, bucket, transfer_config(part_size=part_size, concurrency=concurrency))


def is_s3(storage) -> bool:
    return isinstance(storage, django_storages_s3.S3Storage)


def bucket_of(storage: S3Storage) -> Bucket:
    """The bucket behind an S3Storage, through its (per-thread) client and with its transfer settings."""
    with _translated(f"connecting to the bucket {storage.bucket_name}"):
        return Bucket(storage.connection.meta.client, storage.bucket_name, storage.transfer_config)


def storage_key(storage: S3Storage, name: str) -> str:
    """The S3 key of a storage name (under the storage's `location`)."""
    return storage._normalize_name(clean_name(name))


def storage_name(storage: S3Storage, key: str) -> str:
    location = storage.location.strip("/")
    return key[len(location) + 1:] if location and key.startswith(location + "/") else key


def upload_parameters(storage: S3Storage, name: str) -> dict:
    """PutObject's parameters for `name` as the storage would set them: content type, object parameters, ACL."""
    params = {"ContentType": "application/octet-stream", **storage.get_object_parameters(name)}
    if storage.default_acl and "ACL" not in params:
        params["ACL"] = storage.default_acl
    return params


def upload_part_size(storage: S3Storage) -> int:
    """The part size boto3 uses for a stream of unknown length (the configured one, within S3's limits). A
    non-seekable stream is cut into parts of exactly this size, so a caller can hash the same parts."""
    return ChunksizeAdjuster().adjust_chunksize(storage.transfer_config.multipart_chunksize)


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


def presigned_url(storage: S3Storage, operation: str, params: dict, *, ttl: int, what: str) -> str:
    """A URL for one S3 request (`operation`, the SDK's name, on the storage's bucket) valid `ttl` seconds. Headers
    among `params` (a part's x-amz-checksum-sha256) are signed: the request must send them with these values."""
    with _translated(what):
        return _presigning_client(storage).generate_presigned_url(
            operation, ExpiresIn=ttl, Params={"Bucket": storage.bucket_name, **params})


def presigned_get_url(storage: S3Storage, name: str, *, content_disposition: str, ttl: int) -> str:
    """A GET URL for `name` valid `ttl` seconds, served as a download named by `content_disposition`."""
    return presigned_url(storage, "get_object", {
        "Key": storage_key(storage, name), "ResponseContentDisposition": content_disposition,
        "ResponseContentType": "application/octet-stream"}, ttl=ttl, what=f"signing a URL for {name}")
