"""Celery tasks: take primary keys, call one service, own only the retry policy."""

from celery import shared_task
from django.conf import settings

from repository.services.runs import InfrastructureError, run_execute, run_mark_error

# The task must outlive the sandbox's own wall clock plus staging; past this Celery stops it.
VERIFICATION_SOFT_LIMIT = settings.RUNNER_NOTEBOOK_TIMEOUT_SECONDS + settings.STAGING_TOTAL_SECONDS + 120


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3,
             soft_time_limit=VERIFICATION_SOFT_LIMIT, time_limit=VERIFICATION_SOFT_LIMIT + 60)
def run_verification_task(self, run_pk: int) -> None:
    try:
        run_execute(run_pk=run_pk)
    except InfrastructureError as exc:
        if self.request.retries >= self.max_retries:
            run_mark_error(run_pk=run_pk, message=str(exc))
            return
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task(bind=True, acks_late=True, max_retries=settings.DOI_SYNC_MAX_RETRIES)
def doi_sync_task(self, outbox_pk: int) -> str:
    """Bring one DOI at the registrar up to date; DataCite failing on its side is retried with backoff, and the
    periodic sweep (`doi_sync_pending_task`) picks up whatever is still pending after the retries ran out."""
    from repository.doi import DoiUnavailable
    from repository.services.dois import _backoff, doi_sync

    try:
        return doi_sync(outbox_pk=outbox_pk)
    except DoiUnavailable as exc:
        if self.request.retries >= self.max_retries:
            return "left for the sweep"
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries + 1).total_seconds()) from exc


@shared_task
def doi_sync_pending_task() -> int:
    from repository.services.dois import doi_sync_pending

    return doi_sync_pending()
