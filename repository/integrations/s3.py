"""S3 specifics that code outside the storage layer must not see.

Which library errors mean "storage failed", and the few S3 operations repository/storage.py needs beyond
django-storages' Storage API when the "blobs" alias is its S3Storage: a streamed upload that sends SHA-256
checksums, the checksum S3 reports for an object, a server-side copy that never overwrites, a presigned GET
URL, and listings of old temporary objects and unfinished multipart uploads. Keys passed in and returned are
storage names (relative to the storage's `location`), as everywhere else.
"""

import base64
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.utils import ChunksizeAdjuster
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

# Raised by django-storages' S3Storage (through boto3) when the endpoint fails or refuses; OSError covers the
# local FileSystemStorage (disk full, permissions).
STORAGE_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, OSError)

# CopyObject copies at most 5 GiB in one request; a larger object is copied in parts (UploadPartCopy).
SINGLE_COPY_MAX = 5 * 1024**3

CHECKSUM_ARGS = {"ChecksumAlgorithm": "SHA256"}


def is_s3(storage) -> bool:
    return isinstance(storage, S3Storage)


def _client(storage: S3Storage):
    return storage.connection.meta.client


def _key(storage: S3Storage, name: str) -> str:
    return storage._normalize_name(clean_name(name))


def _name(storage: S3Storage, key: str) -> str:
    location = storage.location.strip("/")
    return key[len(location) + 1:] if location and key.startswith(location + "/") else key


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404 or _error_code(exc) in (
        "404", "NoSuchKey", "NotFound")


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
        try:
            result = client.copy_object(Bucket=storage.bucket_name, Key=_key(storage, target), CopySource=copy_source,
                                        MetadataDirective="COPY", IfNoneMatch="*", **CHECKSUM_ARGS)
        except ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise FileExistsError(target) from exc
            raise
        return result.get("CopyObjectResult", {}).get("ChecksumSHA256")
    first_part = object_info(storage, source, part_number=1)
    part_size = first_part.size if first_part and first_part.part_count else upload_part_size(storage)
    config = TransferConfig(multipart_threshold=1, multipart_chunksize=part_size,
                            max_concurrency=storage.transfer_config.max_request_concurrency)
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
    return _presigning_client(storage).generate_presigned_url("get_object", ExpiresIn=ttl, Params={
        "Bucket": storage.bucket_name, "Key": _key(storage, name),
        "ResponseContentDisposition": content_disposition, "ResponseContentType": "application/octet-stream",
    })


def objects_older_than(storage: S3Storage, prefix: str, before: datetime) -> Iterator[str]:
    """Names of the objects under `prefix` last modified before `before`."""
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
    paginator = client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=_key(storage, prefix)):
        for upload_item in page.get("Uploads", []):
            if upload_item["Initiated"] < before:
                if not dry_run:
                    client.abort_multipart_upload(Bucket=storage.bucket_name, Key=upload_item["Key"],
                                                  UploadId=upload_item["UploadId"])
                aborted += 1
    return aborted
