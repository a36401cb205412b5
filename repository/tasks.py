"""Celery tasks: take primary keys, call one service, own only the retry policy."""

from celery import shared_task
from django.conf import settings

from repository.services.runs import InfrastructureError, error_code_of, run_execute, run_mark_error

# The task must outlive the sandbox's own wall clock plus staging (see the setting's comment).
VERIFICATION_SOFT_LIMIT = settings.VERIFICATION_TASK_SOFT_LIMIT_SECONDS


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3,
             soft_time_limit=VERIFICATION_SOFT_LIMIT, time_limit=VERIFICATION_SOFT_LIMIT + 60)
def run_verification_task(self, run_pk: int) -> None:
    from repository.services.run_leases import run_held_elsewhere

    try:
        run = run_execute(run_pk=run_pk)
    except InfrastructureError as exc:
        if self.request.retries >= self.max_retries:
            run_mark_error(run_pk=run_pk, message=str(exc), code=error_code_of(exc))
            return
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc
    if run is None and run_held_elsewhere(run_pk=run_pk) and self.request.retries < self.max_retries:
        # Redelivered at once after its pool process was killed (acks_late, reject_on_worker_lost), this task finds
        # the run still leased to the dead process. Look again once that lease has lapsed and take the run over
        # then; if its holder is alive after all (a duplicate delivery), the later look finds it busy and stops.
        raise self.retry(countdown=settings.RUN_ORPHAN_SECONDS + settings.RUN_HEARTBEAT_SECONDS)


@shared_task
def reverify_due_task() -> list[str]:
    from repository.services.reverification import reverify_due

    return reverify_due()


@shared_task
def embargoes_lift_due_task() -> int:
    from repository.services.embargoes import embargoes_lift_due

    return len(embargoes_lift_due())


@shared_task
def runs_reap_task() -> list[str]:
    from repository.services.run_leases import runs_reap

    return runs_reap()


DATABASE_RETRY_SECONDS = 10


@shared_task(bind=True, acks_late=True, max_retries=settings.DOI_SYNC_MAX_RETRIES)
def doi_sync_task(self, outbox_pk: int) -> str:
    """Bring one DOI at the registrar up to date; DataCite failing on its side is retried with backoff, and the
    periodic sweep (`doi_sync_pending_task`) picks up whatever is still pending after the retries ran out."""
    from django.db import DatabaseError

    from repository.doi import DoiUnavailable
    from repository.services.dois import _backoff, doi_sync

    try:
        return doi_sync(outbox_pk=outbox_pk)
    except DoiUnavailable as exc:
        if self.request.retries >= self.max_retries:
            return "left for the sweep"
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries + 1).total_seconds()) from exc
    except DatabaseError as exc:
        # The sync released its claim; a database that went away is usually back within a minute.
        if self.request.retries >= self.max_retries:
            return "left for the sweep"
        raise self.retry(exc=exc, countdown=min(DATABASE_RETRY_SECONDS * 2**self.request.retries, 300)) from exc


@shared_task
def doi_sync_pending_task() -> int:
    from repository.services.dois import doi_sync_pending

    return doi_sync_pending()


# --- Primary storage ------------------------------------------------------------------------------------------
@shared_task(bind=True, acks_late=True, max_retries=6)
def blob_promote_task(self, blob_pk: int) -> str:
    """Move a new blob to its content address (queued when its upload commits). Storage failing is retried with
    backoff; after that the blob stays at its (checked) temporary key and the garbage collector tries again."""
    from repository.errors import StorageUnavailable
    from repository.services.blobs import blob_promote

    try:
        return blob_promote(blob_pk=blob_pk)
    except StorageUnavailable as exc:
        if self.request.retries >= self.max_retries:
            return f"left for the garbage collector: {exc.detail}"
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task(bind=True, acks_late=True, max_retries=8)
def temporary_upload_discard_task(self, key: str) -> str:
    """Remove a failed upload's temporary object and unfinished multipart upload, queued when storage failed too
    at the time; retried with backoff (about two hours in all) until storage is back."""
    from repository.storage import STORAGE_ERRORS, discard_temporary

    try:
        return f"aborted {discard_temporary(key)} unfinished uploads to {key}"
    except STORAGE_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            return f"left for the garbage collector: {exc}"
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task(bind=True, acks_late=True, max_retries=6)
def upload_check_task(self, upload_pk: int) -> str:
    """Read a completed direct upload back and add it to its draft if it hashes to what was declared. Storage
    failing is retried with backoff; the garbage collector queues uploads left checking again."""
    from repository.errors import StorageUnavailable
    from repository.services.uploads import upload_check
    from repository.storage import STORAGE_ERRORS

    try:
        return upload_check(upload_pk=upload_pk)
    except (StorageUnavailable, *STORAGE_ERRORS) as exc:
        if self.request.retries >= self.max_retries:
            return f"left for the garbage collector: {exc}"
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task(acks_late=True)
def blob_gc_task() -> str:
    from datetime import timedelta

    from repository.services.blobs import blob_gc

    return blob_gc(grace=timedelta(hours=settings.BLOB_GC_GRACE_HOURS)).line()


# --- Runners that work elsewhere (GitLab): cancelling a run's pipeline --------------------------------------
@shared_task(bind=True, acks_late=True, max_retries=5)
def run_cancel_remote_task(self, run_pk: int) -> bool:
    """Cancel the GitLab pipeline of a cancelled run (the polling worker cancels it too, whichever comes first)."""
    from repository.runners.base import RunnerUnavailable
    from repository.services.runs import run_cancel_remote

    try:
        return run_cancel_remote(run_pk=run_pk)
    except RunnerUnavailable as exc:
        if self.request.retries >= self.max_retries:
            return False  # the pipeline still ends at its job timeout
        raise self.retry(exc=exc, countdown=10 * 2**self.request.retries) from exc


@shared_task
def usage_aggregate_task() -> int:
    """Views and downloads written by requests become counts (COUNTER rules); beat runs it every minute."""
    from repository.services.usage import usage_aggregate

    return usage_aggregate()
