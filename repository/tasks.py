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
