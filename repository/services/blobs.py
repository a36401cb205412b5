"""Blobs over time: recording stored bytes, moving them to their content address, and collecting unused ones.

- `blob_get_or_create(stored)`, inside the caller's transaction: the Blob for bytes just streamed to a temporary key
  (repository/storage.py). A new row points at that key and is queued for `blob_promote` once the transaction
  commits; an existing row with the same sha256 is returned instead, and the caller deletes its temporary object.
- `blob_promote(blob_pk=...)`, a task queued at commit: places the bytes at their content address, points the row
  there and deletes the temporary object. Idempotent; the garbage collector runs it for any row it missed. The
  copy is a side effect, so it runs after the commit and never in the upload's transaction: the upload answers
  as soon as the bytes are stored and checked, and an S3 copy of a large object takes seconds.
- `blob_gc(grace=..., dry_run=...)`: the garbage collector (`manage.py gc_blobs`, the `blob_gc_task` beat entry).

Garbage collection. A blob that no VersionFile and no ExecutionRun.executed_notebook uses is marked
(`unreferenced_since = now`) on one pass and deleted on a later one, if it is still unused and was marked longer
ago than the grace period; a marked blob that something uses again is unmarked. The deletion re-checks under the
row's lock, deletes the row, then the object, then commits: an upload that wants the same bytes waits for the
lock and then stores them afresh, so no version can come to point at bytes being deleted. (Should the commit fail
after the object went, the row stays marked without bytes; `blob_get_or_create` checks a marked row's object
before reusing it.) Marking a reused row afresh in `blob_get_or_create` keeps the collector off it until the
caller's reference commits. A blob that a file of an accepted version uses is never unused, and
`storage.delete_object` refuses its key anyway. Temporary objects older than the grace period that no row points
at (an upload that crashed) are deleted too, and S3 multipart uploads left unfinished are aborted.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, ProtectedError, Q
from django.utils import timezone

from repository import storage
from repository.errors import NbarchiveError, ProtectedObject, StorageUnavailable
from repository.models import Blob, ExecutionRun, VersionFile
from repository.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)

# A row still at its temporary key this long after it was made missed its promote task (the broker was down, the
# worker died); the garbage collector moves it.
PROMOTE_STRAGGLER_AGE = timedelta(minutes=10)


def blob_get_or_create(stored: storage.StoredObject) -> tuple[Blob, bool]:
    """The Blob for stored bytes: a new row at `stored.storage_key`, or the existing one with the same sha256 (the
    caller then deletes its own copy). Call it inside a transaction."""
    existing = Blob.objects.select_for_update().filter(sha256=stored.sha256).first()
    if existing is not None and existing.unreferenced_since is not None:
        if _object_exists(existing.storage_key):
            existing.unreferenced_since = timezone.now()  # a fresh mark: the collector waits a full grace period
            existing.save(update_fields=["unreferenced_since"])
        else:
            # The collector removed its bytes but could not remove the row; these bytes take its place.
            existing.delete()
            existing = None
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():  # a savepoint, so a lost race does not spoil the outer transaction
            blob = Blob.objects.create(sha256=stored.sha256, md5=stored.md5, size=stored.size,
                                       storage_key=stored.storage_key)
            transaction.on_commit(lambda: _queue_promote(blob.pk))
            return blob, True
    except IntegrityError:
        # Someone stored the same bytes at the same moment; theirs wins.
        return Blob.objects.get(sha256=stored.sha256), False


def _object_exists(key: str) -> bool:
    try:
        return storage.object_exists(key)
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable() from exc


def _queue_promote(blob_pk: int) -> None:
    from repository.tasks import blob_promote_task

    try:
        blob_promote_task.delay(blob_pk)
    except Exception:  # the upload is committed; the garbage collector moves what was not queued
        logger.warning("Could not queue blob_promote for blob %s; the next gc_blobs run moves it.", blob_pk,
                       exc_info=True)


def blob_promote(*, blob_pk: int) -> str:
    """Move a blob's bytes from their temporary key to their content address; return the key it ends at.

    Raises StorageUnavailable or StorageChecksumMismatch (the row then keeps its temporary key, whose bytes
    were checked when they were stored, and the task retries)."""
    blob = Blob.objects.filter(pk=blob_pk).first()
    if blob is None:
        return ""
    if not storage.is_temporary_key(blob.storage_key):
        return blob.storage_key
    temporary = blob.storage_key
    target = storage.place_at_content_key(temporary, sha256=blob.sha256, size=blob.size)
    moved = Blob.objects.filter(pk=blob.pk, storage_key=temporary).update(storage_key=target)
    if moved:
        storage.delete_quietly(temporary)
    return target


@dataclass
class GcReport:
    dry_run: bool
    promoted: int = 0
    unmarked: int = 0
    deleted: int = 0
    bytes_freed: int = 0
    marked: int = 0
    temporary_deleted: int = 0
    uploads_aborted: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        text = (f"{verb} {self.deleted} unused blobs ({self.bytes_freed} bytes) and {self.temporary_deleted} "
                f"temporary objects; marked {self.marked}, unmarked {self.unmarked}, moved {self.promoted} to their "
                f"content address, aborted {self.uploads_aborted} unfinished uploads")
        if self.problems:
            text += f"; {len(self.problems)} problems: " + "; ".join(self.problems[:5])
        return text


def _used() -> Q:
    return Q(Exists(VersionFile.objects.filter(blob=OuterRef("pk")))) | Q(
        Exists(ExecutionRun.objects.filter(executed_notebook=OuterRef("pk"))))


def blob_gc(*, grace: timedelta, dry_run: bool = False) -> GcReport:
    """One pass of the garbage collector (see the module docstring). Problems with single blobs are reported,
    not raised, so one bad object does not stop the sweep."""
    now = timezone.now()
    cutoff = now - grace
    report = GcReport(dry_run=dry_run)

    at_temporary_key = Q(storage_key__startswith=storage.TEMPORARY_PREFIX) | Q(
        storage_key__startswith=storage.DIRECT_PREFIX)
    stragglers = Blob.objects.filter(at_temporary_key, created__lt=now - PROMOTE_STRAGGLER_AGE).values_list(
        "pk", flat=True)
    for pk in list(stragglers):
        if dry_run:
            report.promoted += 1
            continue
        try:
            blob_promote(blob_pk=pk)
            report.promoted += 1
        except NbarchiveError as exc:
            report.problems.append(f"blob {pk} not moved: {exc.detail}")

    marked_but_used = Blob.objects.filter(unreferenced_since__isnull=False).filter(_used())
    report.unmarked = marked_but_used.count() if dry_run else marked_but_used.update(unreferenced_since=None)

    # Before marking: a blob marked in this pass is deleted in a later one, however short the grace period.
    expired = Blob.objects.filter(unreferenced_since__lte=cutoff).exclude(_used()).values_list("pk", "size")
    for pk, size in list(expired):
        if dry_run or _delete_unused(pk, cutoff, report):
            report.deleted += 1
            report.bytes_freed += size

    unused = Blob.objects.filter(unreferenced_since__isnull=True).exclude(_used())
    report.marked = unused.count() if dry_run else unused.update(unreferenced_since=now)

    _sweep_temporary(cutoff, report)
    _expire_uploads(now, report)
    return report


def _expire_uploads(now, report: GcReport) -> None:
    from repository.services.uploads import uploads_expire

    try:
        report.uploads_aborted += uploads_expire(now=now, dry_run=report.dry_run)
    except STORAGE_ERRORS as exc:
        report.problems.append(f"expired direct uploads not aborted: {exc}")


def _delete_unused(pk: int, cutoff, report: GcReport) -> bool:
    try:
        with transaction.atomic():
            blob = (Blob.objects.select_for_update(skip_locked=True)
                    .filter(pk=pk, unreferenced_since__lte=cutoff).exclude(_used()).first())
            if blob is None:  # used or re-marked meanwhile, or an upload holds it right now
                return False
            key = blob.storage_key
            blob.delete()  # first: a row something still protects (e.g. a backup copy) stops here
            storage.delete_object(key)
    except ProtectedError as exc:
        report.problems.append(f"blob {pk} kept: {', '.join(sorted({type(o).__name__ for o in exc.protected_objects}))}"
                               f" still refers to it")
        return False
    except ProtectedObject as exc:
        logger.error("Garbage collector: %s", exc.detail)
        report.problems.append(exc.detail)
        return False
    except STORAGE_ERRORS as exc:
        report.problems.append(f"blob {pk} kept: its object could not be deleted ({exc})")
        return False
    logger.info("Garbage collector: deleted blob %s (%s)", pk, key)
    return True


def _sweep_temporary(cutoff, report: GcReport) -> None:
    try:
        in_use = set(Blob.objects.filter(storage_key__startswith=storage.TEMPORARY_PREFIX)
                     .values_list("storage_key", flat=True))
        for key in storage.temporary_objects_older_than(cutoff):
            if key in in_use:
                continue
            if _delete_temporary(key, report):
                report.temporary_deleted += 1
        report.uploads_aborted = storage.abort_stale_uploads(cutoff, dry_run=report.dry_run)
    except STORAGE_ERRORS as exc:
        report.problems.append(f"temporary objects not swept: {exc}")


def _delete_temporary(key: str, report: GcReport) -> bool:
    if report.dry_run:
        return True
    # A row made since the listing: its upload finished meanwhile (a crashed upload's key never gets one).
    if Blob.objects.filter(storage_key=key).exists():
        return False
    return storage.delete_quietly(key)
