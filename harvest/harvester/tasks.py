"""Celery task for scheduled harvests: takes a source's primary key, runs one harvest, owns the retry policy.

Not scheduled by default; add an entry to the beat schedule in repository/celery.py to harvest a source daily.
"""

from celery import shared_task

from harvest.harvester.client import SourceUnreachable


@shared_task(bind=True, acks_late=True, max_retries=3)
def harvest_source_task(self, source_pk: int) -> str:
    """Harvest one source; returns the summary line. A source that is down is tried again later (5, 10, 20 min);
    any other failure (not OAI-PMH, a protocol error) is for an admin to look at and is not retried."""
    from harvest.harvester.services import harvest_source_run

    try:
        summary = harvest_source_run(source_pk=source_pk)
    except SourceUnreachable as exc:
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=300 * 2**self.request.retries) from exc
    return summary.line()
