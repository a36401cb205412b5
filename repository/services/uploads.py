"""Direct, resumable uploads of a draft's files (the Upload model explains the protocol; upload_storage.py the store).

- `upload_start`: the client declares path, size and SHA-256; the checks of a streamed upload apply (path, size
  limits, the record's quota, the number of files) and a second upload of a path already under way is a Conflict
  (409). The store begins a multipart upload; the answer gives the part size.
- `upload_sign_parts`: for each part the client names with its SHA-256, where to PUT it and the headers to send
  (S3: a presigned UploadPart URL valid S3_PRESIGNED_TTL; a local directory: the application's part URL, signed
  the same way by `part_token`). A client signs again when URLs expired.
- `upload_received_parts`: what the store holds, so a client resumes days later by sending only the rest.
- `upload_part_receive`: a local directory only, the application's end of a part URL.
- `upload_complete`: every part there with its expected size (S3: CompleteMultipartUpload), the upload becomes
  `checking` and `upload_check` is queued: it reads the object back (a local directory: concatenates the parts
  first) and adds the file to the draft only if it hashes to the declared SHA-256 (and a notebook validates);
  otherwise the object is deleted and the upload is `failed` with a message naming the file.
- `upload_abort`, and `uploads_expire` (the garbage collector): unfinished uploads older than UPLOAD_EXPIRY_DAYS
  are aborted, so their parts stop taking space.
"""

import base64
import binascii
import logging
import re
import tempfile
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from repository import storage, upload_storage
from repository.errors import Conflict, InvalidInput, NbarchiveError, NotFound, PayloadTooLarge, StorageUnavailable
from repository.models import Upload, Version
from repository.services.audit import audit_event_append
from repository.services.drafts import draft_lock_for_change, require_owner
from repository.services.files import file_addition_check, file_attach, file_path_check
from repository.services.notebooks import notebook_validate
from repository.storage import STORAGE_ERRORS
from repository.stream_digests import stream_digests

logger = logging.getLogger(__name__)

S3_MIN_PART_SIZE = 5 * 1024**2
S3_MAX_PART_SIZE = 5 * 1024**3
MIB = 1024**2
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_PART_SALT = "nbarchive.upload-part"


@dataclass(frozen=True)
class PartTarget:
    number: int
    # None: the application's own part URL (a local directory), which the API builds around `token`.
    url: str | None
    headers: dict[str, str]
    token: str = ""


def part_size_for(size: int, asked: int | None = None) -> int:
    """The part size the client asked for, if S3 can take it; else UPLOAD_PART_SIZE, or a larger whole number of
    MiB when the file would need more than UPLOAD_MAX_PARTS. Raises InvalidInput for a size S3 cannot take."""
    if asked is not None:
        if not S3_MIN_PART_SIZE <= asked <= S3_MAX_PART_SIZE or -(-size // asked) > settings.UPLOAD_MAX_PARTS:
            raise InvalidInput(f"part_size must be between {S3_MIN_PART_SIZE} and {S3_MAX_PART_SIZE} bytes and cut "
                               f"the file into at most {settings.UPLOAD_MAX_PARTS} parts.",
                               field_errors={"part_size": ["Not a part size S3 accepts for this file."]})
        return asked
    smallest = -(-size // settings.UPLOAD_MAX_PARTS)
    return max(settings.UPLOAD_PART_SIZE, S3_MIN_PART_SIZE, -(-smallest // MIB) * MIB)


def _upload_for(upload: Upload, actor) -> Upload:
    require_owner(actor, upload.version)
    return upload


def upload_start(*, version: Version, actor, path: str, size: int, sha256: str, part_size: int | None = None) -> Upload:
    """Begin a direct upload of `size` bytes hashing to `sha256` (hex) at `path`, in parts of `part_size` (or the
    configured size). Raises InvalidInput, PayloadTooLarge, Conflict (the path is taken or being uploaded),
    StorageUnavailable."""
    require_owner(actor, version)
    sha256 = (sha256 or "").strip().lower()
    if not _SHA256_HEX.match(sha256):
        raise InvalidInput("sha256 must be the file's SHA-256 as 64 hexadecimal digits.",
                           field_errors={"sha256": ["Not 64 hexadecimal digits."]})
    path = file_path_check(version, path)
    file_addition_check(version, path, size)
    part_size = part_size_for(size, part_size)
    under_way = Upload.objects.filter(version=version, state__in=Upload.ACTIVE_STATES).count()
    if version.files.count() + under_way >= settings.MAX_FILES_PER_VERSION:
        raise PayloadTooLarge(f"A version may hold at most {settings.MAX_FILES_PER_VERSION} files "
                              f"(uploads under way included).")
    try:
        with transaction.atomic():
            version = draft_lock_for_change(version=version, actor=actor)
            file_path_check(version, path)
            # An earlier failed upload of this path is replaced: its message has been read, or is moot now.
            Upload.objects.filter(version=version, path=path, state=Upload.State.FAILED).delete()
            upload = Upload(version=version, path=path, size=size, sha256=sha256, part_size=part_size,
                            created_by=actor,
                            expires_at=timezone.now() + timedelta(days=settings.UPLOAD_EXPIRY_DAYS))
            upload.storage_key = upload_storage.direct_key(upload.upload_id)
            upload.save()
            audit_event_append(actor=actor, action="draft.upload_start", version=version,
                               data={"path": path, "size": size, "sha256": sha256})
    except IntegrityError:
        # The partial unique constraint: another client began this path between our check and our insert.
        raise Conflict(f"'{path}' is being uploaded by another client; resume or abort that upload first.",
                       field_errors={"path": ["An upload of this path is under way."]}) from None
    try:
        upload.multipart_id = upload_storage.begin(upload.storage_key)
    except STORAGE_ERRORS as exc:
        upload.delete()
        raise StorageUnavailable() from exc
    upload.save(update_fields=["multipart_id"])
    return upload


def _checked_sha256_b64(number: int, value: str) -> str:
    value = (value or "").strip()
    if _SHA256_HEX.match(value.lower()):
        return base64.b64encode(bytes.fromhex(value.lower())).decode("ascii")
    try:
        if len(base64.b64decode(value, validate=True)) == 32:
            return value
    except (binascii.Error, ValueError):
        pass
    raise InvalidInput(f"Part {number}: sha256 must be the part's SHA-256, base64 or 64 hexadecimal digits.",
                       field_errors={f"parts[{number}].sha256": ["Not a SHA-256."]})


def _require_uploading(upload: Upload) -> None:
    if upload.state != Upload.State.UPLOADING:
        raise Conflict(f"The upload of '{upload.path}' is {upload.state}; it takes no more parts.")


def part_token(upload: Upload, number: int, sha256_b64: str) -> str:
    return signing.TimestampSigner(salt=_PART_SALT).sign(f"{upload.upload_id.hex}:{number}:{sha256_b64}")


def upload_sign_parts(*, upload: Upload, actor, parts: list[dict]) -> list[PartTarget]:
    """Where and how to PUT each of `parts` ({"number", "sha256"}). Raises InvalidInput, Conflict."""
    _upload_for(upload, actor)
    _require_uploading(upload)
    targets = []
    for part in parts:
        number = part["number"]
        if not 1 <= number <= upload.part_count:
            raise InvalidInput(f"Part {number} does not exist: the file has parts 1 to {upload.part_count}.",
                               field_errors={"parts": [f"Part {number} is out of range."]})
        sha256_b64 = _checked_sha256_b64(number, part["sha256"])
        headers = {"x-amz-checksum-sha256": sha256_b64}
        try:
            url = upload_storage.part_url(upload.storage_key, upload.multipart_id, number=number,
                                          sha256_b64=sha256_b64, ttl=settings.S3_PRESIGNED_TTL)
        except STORAGE_ERRORS as exc:
            raise StorageUnavailable() from exc
        token = ""
        if url is None:
            first = (number - 1) * upload.part_size
            headers["Content-Range"] = f"bytes {first}-{first + upload.part_length(number) - 1}/{upload.size}"
            token = part_token(upload, number, sha256_b64)
        targets.append(PartTarget(number=number, url=url, headers=headers, token=token))
    return targets


def upload_received_parts(*, upload: Upload, actor) -> list[upload_storage.ReceivedPart]:
    _upload_for(upload, actor)
    if upload.state != Upload.State.UPLOADING:
        return []
    try:
        return upload_storage.received_parts(upload.storage_key, upload.multipart_id)
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable() from exc


def upload_part_receive(*, upload_id, number: int, token: str, sha256_b64: str, content_range: str, stream,
                        content_length: int | None) -> upload_storage.ReceivedPart:
    """A local directory: store one part sent to the application's part URL. The URL's token stands for the
    owner's signature, as a presigned URL does on S3: it names the upload, the part and its SHA-256, and expires
    after S3_PRESIGNED_TTL. Raises PermissionDenied-like NotFound for a bad token, InvalidInput, Conflict."""
    try:
        signed = signing.TimestampSigner(salt=_PART_SALT).unsign(token, max_age=settings.S3_PRESIGNED_TTL)
    except signing.SignatureExpired:
        raise InvalidInput("The part URL has expired; ask for new part URLs and send the part again.",
                           field_errors={"token": ["Expired."]}) from None
    except signing.BadSignature:
        raise NotFound("No such part URL.") from None
    upload = Upload.objects.filter(upload_id=upload_id).select_related("version").first()
    if upload is None or signed != f"{upload.upload_id.hex}:{number}:{sha256_b64}":
        raise NotFound("No such part URL (or the x-amz-checksum-sha256 header differs from the signed one).")
    if upload.multipart_id:  # an S3 upload: its parts go to presigned URLs, never here
        raise NotFound("This upload's parts go to the object store, not to the application.")
    _require_uploading(upload)
    if not 1 <= number <= upload.part_count:
        raise NotFound(f"The file has parts 1 to {upload.part_count}.")
    length = upload.part_length(number)
    first = (number - 1) * upload.part_size
    expected_range = f"bytes {first}-{first + length - 1}/{upload.size}"
    if content_range.strip() != expected_range:
        raise InvalidInput(f"Part {number} is {expected_range}; the request says '{content_range}'.",
                           field_errors={"Content-Range": [f"Expected {expected_range}."]})
    if content_length != length:
        raise InvalidInput(f"Part {number} is {length} bytes; Content-Length says {content_length}.",
                           field_errors={"Content-Length": [f"Expected {length}."]})
    try:
        return upload_storage.part_write(upload.storage_key, number=number, stream=stream, length=length,
                                         sha256_b64=sha256_b64)
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable() from exc


def upload_complete(*, upload: Upload, actor) -> Upload:
    """All parts received: the upload becomes `checking` and the check is queued. Completing again is no error.
    Raises InvalidInput naming the parts missing or of the wrong size."""
    _upload_for(upload, actor)
    if upload.state in (Upload.State.CHECKING, Upload.State.READY):
        return upload
    _require_uploading(upload)
    received = {part.number: part for part in upload_received_parts(upload=upload, actor=actor)}
    missing = [n for n in range(1, upload.part_count + 1) if n not in received]
    wrong = [n for n, part in received.items() if n <= upload.part_count and part.size != upload.part_length(n)]
    if missing or wrong:
        problems = ([f"missing parts {_ranges(missing)}"] if missing else []) + (
            [f"parts of the wrong size: {_ranges(wrong)}"] if wrong else [])
        raise InvalidInput(f"The upload of '{upload.path}' is not complete: {'; '.join(problems)}.",
                           field_errors={"parts": problems})
    if upload.multipart_id:
        # S3: CompleteMultipartUpload here, so the client's "complete" means what it means to S3. A local directory's
        # parts are concatenated by the check, in the background: that is the application copying bytes.
        try:
            upload_storage.assemble(upload.storage_key, upload.multipart_id,
                                    [received[n] for n in range(1, upload.part_count + 1)])
        except STORAGE_ERRORS as exc:
            raise StorageUnavailable() from exc
    with transaction.atomic():
        changed = Upload.objects.filter(pk=upload.pk, state=Upload.State.UPLOADING).update(
            state=Upload.State.CHECKING, completed_at=timezone.now())
        if changed:
            transaction.on_commit(lambda: _queue_check(upload.pk))
    upload.refresh_from_db()
    return upload


def _ranges(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in sorted(numbers)[:20])
    return shown + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")


def _queue_check(upload_pk: int) -> None:
    from repository.tasks import upload_check_task

    try:
        upload_check_task.delay(upload_pk)
    except Exception:  # the garbage collector's pass re-queues uploads left checking
        logger.warning("Could not queue upload_check for upload %s.", upload_pk, exc_info=True)


def upload_abort(*, upload: Upload, actor) -> None:
    """Drop an upload and its parts. One being checked cannot be aborted (Conflict); a failed one is dismissed."""
    _upload_for(upload, actor)
    if upload.state == Upload.State.CHECKING:
        raise Conflict(f"'{upload.path}' is being checked; wait for the result.")
    _drop(upload)


def _drop(upload: Upload) -> None:
    if upload.state != Upload.State.READY:
        upload_storage.abort(upload.storage_key, upload.multipart_id)
    upload.delete()


def upload_check(*, upload_pk: int) -> str:
    """Assemble a completed upload, read it back and add it to the draft if it is what the client declared;
    return the resulting state. Idempotent: anything but a `checking` upload is left alone."""
    upload = Upload.objects.select_related("version", "created_by").filter(pk=upload_pk).first()
    if upload is None or upload.state != Upload.State.CHECKING:
        return upload.state if upload else "gone"
    key = upload.storage_key
    if not storage.object_exists(key):
        parts = upload_storage.received_parts(key, upload.multipart_id)
        upload_storage.assemble(key, upload.multipart_id, parts[:upload.part_count])
    with storage.open_blob_stream(key) as stream:
        found = stream_digests(stream)
    if found.size != upload.size or found.sha256 != upload.sha256:
        return _fail(upload, f"{upload.path}: the bytes stored ({found.size} bytes, sha256 {found.sha256}) are not "
                             f"the ones declared ({upload.size} bytes, sha256 {upload.sha256}); the file was not added."
                             f" Upload it again.")
    stored = storage.StoredObject(storage_key=key, sha256=upload.sha256, md5=found.md5, size=found.size)
    try:
        if upload.path.lower().endswith(".ipynb"):
            with tempfile.SpooledTemporaryFile(max_size=MIB) as spool, storage.open_blob_stream(key) as stream:
                while piece := stream.read(upload_storage.PIECE):
                    spool.write(piece)
                spool.seek(0)
                notebook_validate(spool)
        file_attach(version=upload.version, actor=upload.created_by, path=upload.path, stored=stored, upload=upload)
    except NbarchiveError as exc:
        if isinstance(exc, StorageUnavailable):
            raise  # the task retries
        return _fail(upload, f"{upload.path}: {exc.detail} The file was not added.")
    return Upload.State.READY


def _fail(upload: Upload, message: str) -> str:
    storage.delete_quietly(upload.storage_key)
    with transaction.atomic():
        Upload.objects.filter(pk=upload.pk).update(state=Upload.State.FAILED, message=message)
        audit_event_append(actor=upload.created_by, action="draft.upload_failed", version=upload.version,
                           data={"path": upload.path, "message": message})
    return Upload.State.FAILED


def uploads_expire(*, now, dry_run: bool = False) -> int:
    """Abort the uploads whose time ran out (unfinished, failed or done: their rows go too) and, on S3, multipart
    uploads under uploads/direct/ whose row is gone (a discarded draft); return how many were aborted. Uploads
    left `checking` (their task was lost) are queued again."""
    expired = list(Upload.objects.filter(expires_at__lt=now).exclude(state=Upload.State.CHECKING))
    aborted = 0
    for upload in expired:
        if not dry_run:
            _drop(upload)
        aborted += upload.state != Upload.State.READY
    if not dry_run:
        stuck = Upload.objects.filter(state=Upload.State.CHECKING, completed_at__lt=now - timedelta(hours=1))
        for pk in stuck.values_list("pk", flat=True):
            _queue_check(pk)
    abandoned_before = now - timedelta(days=settings.UPLOAD_EXPIRY_DAYS, hours=1)
    return aborted + upload_storage.abandoned_uploads_abort(abandoned_before, dry_run=dry_run)
