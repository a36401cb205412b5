"""Adding and removing a draft's files.

`draft_file_upload` streams the request body to a temporary object in blob storage, hashing on the way (and, on
S3, checking S3's SHA-256 of what it stored), and only then writes the VersionFile row, so a version never lists
bytes that are not fully stored. A notebook (*.ipynb) is also spooled to a temporary file while it streams and
validated before it is accepted. Identical content is stored once: a second upload of the same bytes points at
the existing blob and its temporary object is removed; new bytes move to their content address after the commit
(services/blobs.py). A failed upload leaves no row, and its temporary object is removed (or, if storage failed
too, swept by the garbage collector).
"""

import tempfile

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Sum

from repository import storage, validators
from repository.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from repository.models import Blob, Upload, Version, VersionFile
from repository.services.audit import audit_event_append
from repository.services.blobs import blob_get_or_create
from repository.services.drafts import draft_lock_for_change, require_owner
from repository.services.notebooks import notebook_validate

SPOOL_IN_MEMORY_BYTES = 1024 * 1024


def file_path_check(version: Version, path: str, *, upload: Upload | None = None) -> str:
    """The normalized path, if the draft can take a new file there. `upload` is the direct upload that is
    adding it (it holds the path meanwhile)."""
    path = validators.normalize_file_path(path)
    try:
        validators.validate_file_path(path)
    except ValidationError as exc:
        raise InvalidInput(exc.messages[0], field_errors={"path": exc.messages}) from None
    existing = list(VersionFile.objects.filter(version=version).values_list("path", flat=True))
    skeleton = validators.lookalike_skeleton(path)
    for other in existing:
        if other == path:
            raise Conflict(f"The draft already has a file '{path}'; delete it first to replace it.",
                           field_errors={"path": ["A file with this path exists."]})
        if other.lower() == path.lower():
            raise Conflict(f"'{path}' differs from the existing '{other}' only in letter case.",
                           field_errors={"path": ["Differs from an existing file only in letter case."]})
        if validators.lookalike_skeleton(other) == skeleton:
            raise Conflict(f"'{path}' looks the same as the existing '{other}': it has "
                           f"{validators.lookalike_difference(path, other)}. Rename it so that readers can tell the "
                           "files apart.", field_errors={"path": ["Looks the same as an existing file's path."]})
        if other.startswith(path + "/") or path.startswith(other + "/"):
            raise Conflict(f"'{path}' and the existing '{other}' would be a file and a folder of the same name.",
                           field_errors={"path": ["Conflicts with a folder or file of the same name."]})
    under_way = Upload.objects.filter(version=version, path=path, state__in=Upload.ACTIVE_STATES)
    if upload is not None:
        under_way = under_way.exclude(pk=upload.pk)
    if under_way.exists():
        raise Conflict(f"'{path}' is being uploaded by another client; resume or abort that upload first.",
                       field_errors={"path": ["An upload of this path is under way."]})
    if version.data_references.filter(target_path=path).exists():
        raise Conflict(f"A data reference is staged at '{path}'; choose another path or change the reference.",
                       field_errors={"path": ["A data reference uses this path."]})
    return path


def file_addition_check(version: Version, path: str, content_length: int | None) -> None:
    if not version.is_editable:
        raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}; its files cannot change.")
    if version.files.count() >= settings.MAX_FILES_PER_VERSION:
        raise PayloadTooLarge(f"A version may hold at most {settings.MAX_FILES_PER_VERSION} files.")
    limit = size_limit(path)
    if content_length is not None and content_length > limit:
        raise PayloadTooLarge(f"The file is {content_length} bytes; the limit is {limit} bytes"
                              f"{' for a notebook' if limit != settings.MAX_FILE_SIZE else ''}.")
    if content_length == 0:
        raise InvalidInput("The file is empty.", field_errors={"file": ["The file is empty."]})
    if content_length is not None:
        used = record_bytes_used(version.record)
        if used + content_length > settings.MAX_RECORD_SIZE:
            raise PayloadTooLarge(f"The record holds {used} bytes (uploads under way included); {content_length} more "
                                  f"would pass its quota of {settings.MAX_RECORD_SIZE} bytes.")


def record_bytes_used(record) -> int:
    """The bytes a record's versions hold, each distinct file counted once, plus its drafts' uploads under way."""
    stored = (Blob.objects.filter(version_files__version__record=record).distinct()
              .aggregate(total=Sum("size"))["total"] or 0)
    under_way = (Upload.objects.filter(version__record=record, state__in=Upload.ACTIVE_STATES)
                 .aggregate(total=Sum("size"))["total"] or 0)
    return stored + under_way


def size_limit(path: str) -> int:
    if path.lower().endswith(".ipynb"):
        return min(settings.MAX_NOTEBOOK_SIZE, settings.MAX_FILE_SIZE)
    return settings.MAX_FILE_SIZE


def draft_file_upload(*, version: Version, actor, path: str, stream, content_length: int | None) -> VersionFile:
    """Store `stream` as the draft's file at `path`. The transfer happens outside any database transaction."""
    require_owner(actor, version)
    path = file_path_check(version, path)
    file_addition_check(version, path, content_length)
    is_notebook = path.lower().endswith(".ipynb")
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
        stored = storage.store_stream(stream, max_size=size_limit(path), expected_size=content_length,
                                      tee=spool if is_notebook else None)
        try:
            if stored.size == 0:
                raise InvalidInput("The file is empty.", field_errors={"file": ["The file is empty."]})
            if is_notebook:
                spool.seek(0)
                notebook_validate(spool)
            return file_attach(version=version, actor=actor, path=path, stored=stored)
        except BaseException:
            storage.delete_quietly(stored.storage_key)
            raise


def file_attach(*, version: Version, actor, path: str, stored: storage.StoredObject,
                upload: Upload | None = None) -> VersionFile:
    """Add stored bytes to the draft at `path` (streamed here, or a direct `upload`, which becomes ready in the
    same transaction). Deletes `stored` when the same bytes are stored already."""
    # The Blob row and the VersionFile row commit together: a refused attach leaves no Blob pointing at bytes
    # that the caller is about to delete.
    with transaction.atomic():
        # Checked again under the lock: the transfer may have taken minutes.
        version = draft_lock_for_change(version=version, actor=actor)
        file_path_check(version, path, upload=upload)
        file_addition_check(version, path, None)
        blob, created = blob_get_or_create(stored)
        version_file = VersionFile.objects.create(version=version, path=path, blob=blob)
        if blob.unreferenced_since is not None:
            Blob.objects.filter(pk=blob.pk).update(unreferenced_since=None)  # used again
        if not version.notebook_path and version_file.is_notebook:
            version.notebook_path = path
            version.save(update_fields=["notebook_path", "updated"])
        if upload is not None:
            Upload.objects.filter(pk=upload.pk).update(state=Upload.State.READY, md5=stored.md5)
        audit_event_append(actor=actor, action="draft.file_add", version=version,
                           data={"path": path, "sha256": blob.sha256, "size": blob.size})
    if not created:
        # The same bytes were stored before; keep that object and drop the copy just written.
        storage.delete_quietly(stored.storage_key)
    return version_file


@transaction.atomic
def draft_file_delete(*, version: Version, actor, path: str) -> None:
    """Remove a file from a draft. The blob stays: other versions may share it (garbage is swept later)."""
    version = draft_lock_for_change(version=version, actor=actor)
    deleted, _ = VersionFile.objects.filter(version=version, path=path).delete()
    if not deleted:
        raise NotFound(f"The draft has no file '{path}'.")
    if version.notebook_path == path:
        version.notebook_path = ""
        version.save(update_fields=["notebook_path", "updated"])
    audit_event_append(actor=actor, action="draft.file_delete", version=version, data={"path": path})
