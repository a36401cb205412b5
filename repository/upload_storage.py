"""The parts of a direct, resumable upload in blob storage, whichever backend the "blobs" alias is.

One protocol for clients (repository/services/uploads.py): the file is cut into numbered parts, each sent with a PUT
carrying `x-amz-checksum-sha256` (the part's SHA-256, base64); the store refuses a part whose bytes do not hash to
it; the parts received can be listed at any time, so a client resumes by sending only the others.

- S3: a multipart upload at `uploads/direct/<id>`; the part URLs are presigned UploadPart URLs and the bytes go
  straight to S3 (integrations/s3/multipart.py). Assembling is CompleteMultipartUpload.
- A local directory: the application receives the parts (`part_write`) into `uploads/direct/<id>.parts/`, one
  file per part named `<number>.<sha256 hex>`, written under a temporary name and renamed once checked, so a part
  cut off mid-way is never listed. Assembling concatenates them into `uploads/direct/<id>`.

Direct uploads live under their own prefix, not uploads/tmp/: they may stay unfinished for days (UPLOAD_EXPIRY_DAYS),
longer than the garbage collector's grace period for temporary objects of crashed uploads. Errors: STORAGE_ERRORS,
InvalidInput for a part that is not what it claims to be.
"""

import base64
import hashlib
import os
import shutil
import uuid
from datetime import datetime

from repository.errors import InvalidInput
from repository.integrations import s3
from repository.integrations.s3 import multipart
from repository.integrations.s3.multipart import ReceivedPart
from repository.storage import DIRECT_PREFIX, blob_storage

PIECE = 1024 * 1024

__all__ = ["DIRECT_PREFIX", "ReceivedPart", "abort", "assemble", "begin", "direct_key", "part_url",
           "part_write", "received_parts"]


def direct_key(upload_id: uuid.UUID) -> str:
    return f"{DIRECT_PREFIX}{upload_id.hex}"


def b64_to_hex(sha256_b64: str) -> str:
    return base64.b64decode(sha256_b64).hex()


def _parts_dir(key: str) -> str:
    return blob_storage().path(f"{key}.parts")


def begin(key: str) -> str:
    """Begin an upload to `key`; return S3's UploadId (a local directory: empty)."""
    storage = blob_storage()
    if s3.is_s3(storage):
        return multipart.begin(storage, key)
    os.makedirs(_parts_dir(key), exist_ok=True)
    return ""


def part_url(key: str, multipart_id: str, *, number: int, sha256_b64: str, ttl: int) -> str | None:
    """S3: a presigned UploadPart URL for the part; a local directory: None (the part goes to the application)."""
    storage = blob_storage()
    if not s3.is_s3(storage):
        return None
    return multipart.part_url(storage, key, multipart_id, number=number, sha256_b64=sha256_b64, ttl=ttl)


def received_parts(key: str, multipart_id: str) -> list[ReceivedPart]:
    """The parts the store holds, by number."""
    storage = blob_storage()
    if s3.is_s3(storage):
        return multipart.received_parts(storage, key, multipart_id)
    try:
        names = os.listdir(_parts_dir(key))
    except FileNotFoundError:
        return []
    parts = []
    for name in names:
        number, _, sha256_hex = name.partition(".")
        if number.isdigit() and len(sha256_hex) == 64:
            size = os.stat(os.path.join(_parts_dir(key), name)).st_size
            sha256_b64 = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
            parts.append(ReceivedPart(number=int(number), size=size, etag=sha256_hex, sha256=sha256_b64))
    return sorted(parts, key=lambda part: part.number)


def part_write(key: str, *, number: int, stream, length: int, sha256_b64: str) -> ReceivedPart:
    """A local directory: store `length` bytes of `stream` as part `number`, refusing them (InvalidInput, nothing
    kept) when they do not hash to `sha256_b64` or the stream ends early. A part sent again replaces the earlier
    one, as S3 does."""
    directory = _parts_dir(key)
    if not os.path.isdir(directory):
        raise FileNotFoundError(directory)
    digest, received = hashlib.sha256(), 0
    partial = os.path.join(directory, f"partial-{uuid.uuid4().hex}")
    try:
        with open(partial, "xb") as handle:
            while received < length:
                piece = stream.read(min(PIECE, length - received))
                if not piece:
                    break
                digest.update(piece)
                handle.write(piece)
                received += len(piece)
        if received != length:
            raise InvalidInput(f"Part {number} ended after {received} of {length} bytes.",
                               field_errors={"part": ["The body is shorter than Content-Length."]})
        if base64.b64encode(digest.digest()).decode("ascii") != sha256_b64:
            raise InvalidInput(f"Part {number}: the bytes received do not match x-amz-checksum-sha256 (BadDigest).",
                               field_errors={"x-amz-checksum-sha256": ["The bytes do not hash to this SHA-256."]})
        for old in os.listdir(directory):
            if old.partition(".")[0] == str(number):
                os.unlink(os.path.join(directory, old))
        os.replace(partial, os.path.join(directory, f"{number}.{digest.hexdigest()}"))
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return ReceivedPart(number=number, size=length, etag=digest.hexdigest(), sha256=sha256_b64)


def assemble(key: str, multipart_id: str, parts: list[ReceivedPart]) -> None:
    """Make the object at `key` from `parts` (in order): CompleteMultipartUpload, or a concatenation of the part
    files (which are then removed). Nothing happens when the object is there already (a retried task)."""
    storage = blob_storage()
    if storage.exists(key):
        return
    if s3.is_s3(storage):
        multipart.complete(storage, key, multipart_id, parts)
        return
    directory = _parts_dir(key)
    target = storage.path(key)
    partial = f"{target}.assembling"
    with open(partial, "wb") as output:
        for part in parts:
            with open(os.path.join(directory, f"{part.number}.{part.etag}"), "rb") as source:
                shutil.copyfileobj(source, output, PIECE)
    os.replace(partial, target)
    shutil.rmtree(directory, ignore_errors=True)


def abort(key: str, multipart_id: str) -> None:
    """Drop an upload: its parts (S3: AbortMultipartUpload) and an assembled object if there is one."""
    storage = blob_storage()
    if s3.is_s3(storage):
        if multipart_id:
            multipart.abort(storage, key, multipart_id)
    else:
        shutil.rmtree(_parts_dir(key), ignore_errors=True)
    storage.delete(key)


def abandoned_uploads_abort(before: datetime, *, dry_run: bool = False) -> int:
    """S3: abort multipart uploads under uploads/direct/ begun before `before` whose row is gone (a discarded
    draft); return how many. A local directory: remove part folders left behind the same way."""
    storage = blob_storage()
    if s3.is_s3(storage):
        return s3.abort_uploads_older_than(storage, DIRECT_PREFIX, before, dry_run=dry_run)
    try:
        folders, _names = storage.listdir(DIRECT_PREFIX)
    except FileNotFoundError:
        return 0
    removed = 0
    for folder in folders:
        path = storage.path(DIRECT_PREFIX + folder)
        if folder.endswith(".parts") and datetime.fromtimestamp(os.stat(path).st_mtime, tz=before.tzinfo) < before:
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
