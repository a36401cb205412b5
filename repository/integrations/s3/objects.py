"""What repository/storage.py needs beyond the Storage API when the "blobs" alias is an S3Storage: a streamed upload
that sends SHA-256 checksums, the checksum S3 reports for an object, a server-side copy that never overwrites, a
streamed read of an object, and listings of old temporary objects and unfinished multipart uploads.

Built on the door's `Bucket` (client.py), so nothing here touches the SDK; errors are its (StorageError and
kinds), plus FileNotFoundError and FileExistsError where the Storage API's convention wants them. Names passed in
and returned are storage names (relative to the storage's `location`), as everywhere else.
"""

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from repository.errors import ObjectExists, ObjectMissing
from repository.integrations.s3.client import (
    ObjectStream,
    S3Storage,
    bucket_of,
    storage_key,
    storage_name,
    upload_parameters,
    upload_part_size,
)

# CopyObject copies at most 5 GiB in one request; a larger object is copied in parts (UploadPartCopy).
SINGLE_COPY_MAX = 5 * 1024**3


def b64_sha256(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def upload(storage: S3Storage, name: str, stream) -> None:
    """Stream `stream` to `name` with boto3's managed (multipart, parallel) transfer, sending a SHA-256
    checksum with every part (or with the single PUT): S3 refuses a part whose bytes do not match it.

    boto3 computes those checksums from the bytes it sends, not the caller's: what S3 then reports for the object
    is an independent account of what it received, which the caller compares with its own hashes."""
    bucket_of(storage).upload_stream(storage_key(storage, name), stream, params=upload_parameters(storage, name),
                                     what=f"uploading {name}")


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
    try:
        head = bucket_of(storage).head(storage_key(storage, name), checksums=True, part_number=part_number,
                                       what=f"reading the checksum of {name}")
    except ObjectMissing:
        return None
    reported = head.get("ChecksumSHA256")
    composite = head.get("ChecksumType") == "COMPOSITE" or bool(reported and "-" in reported)
    return ObjectInfo(size=head["ContentLength"], sha256=reported.split("-")[0] if reported else None,
                      composite=composite, part_count=head.get("PartsCount"), last_modified=head["LastModified"])


def copy_new(storage: S3Storage, source: str, target: str, *, size: int) -> str | None:
    """Server-side copy of `source` to `target`, only if `target` does not exist; return the SHA-256 checksum
    (base64) S3 computed for the copy, None when it reported none. Raises FileExistsError when `target`
    exists, ObjectMissing when `source` does not.

    Up to 5 GiB: one CopyObject with If-None-Match: * (S3 refuses to overwrite), asking for a full-object SHA-256
    of the copy. Larger: boto3's managed multipart copy with the source's part size, so the copy's composite
    checksum is comparable with the source's; s3transfer cannot send If-None-Match, so the caller's existence
    check is what guards it.
    """
    bucket = bucket_of(storage)
    source_key, target_key = storage_key(storage, source), storage_key(storage, target)
    what = f"copying {source} to {target}"
    if size <= SINGLE_COPY_MAX:
        try:
            return bucket.copy_if_absent(source_key, target_key, what=what)
        except ObjectExists as exc:
            raise FileExistsError(target) from exc
    first_part = object_info(storage, source, part_number=1)
    part_size = first_part.size if first_part and first_part.part_count else upload_part_size(storage)
    bucket.copy_in_parts(source_key, target_key, part_size=part_size, what=what)
    info = object_info(storage, target)
    return info.sha256 if info else None


def open_stream(storage: S3Storage, name: str) -> ObjectStream:
    """The object as a stream read front to back, without holding it whole in memory (django-storages' S3File
    downloads the whole object on the first read). Raises FileNotFoundError for a missing object, like
    FileSystemStorage."""
    try:
        return bucket_of(storage).get(storage_key(storage, name), name=name)
    except ObjectMissing as exc:
        raise FileNotFoundError(name) from exc


def objects_older_than(storage: S3Storage, prefix: str, before: datetime) -> Iterator[str]:
    """Names of the objects under `prefix` last modified before `before`."""
    for item in bucket_of(storage).list_objects(storage_key(storage, prefix), what=f"listing {prefix}"):
        if item["LastModified"] < before:
            yield storage_name(storage, item["Key"])


def abort_uploads_older_than(storage: S3Storage, prefix: str, before: datetime, *, dry_run: bool = False) -> int:
    """Abort the multipart uploads under `prefix` started before `before` (a process that died mid-upload
    leaves its parts behind, invisible but stored); return how many."""
    bucket = bucket_of(storage)
    what = f"aborting the unfinished uploads under {prefix}"
    aborted = 0
    for started in bucket.list_uploads(storage_key(storage, prefix), what=what):
        if started["Initiated"] < before:
            if not dry_run:
                bucket.abort_upload(started["Key"], started["UploadId"], what=what)
            aborted += 1
    return aborted
