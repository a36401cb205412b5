"""Celery tasks of the backup tier, run nightly by beat (repository/celery.py): each calls one operation.

No time limits: a first backup of a large archive runs for hours. A worker that dies mid-run leaves the run's
lock row behind; the next run takes over once its heartbeat is six hours old.

The task names are the ones these tasks had in repository/tasks.py: the beat schedule, and messages already
queued, refer to them by name.
"""

from celery import shared_task
from django.conf import settings

from repository.backup.errors import BackupRunning
from repository.backup.fixity import fixity_check_run
from repository.backup.services import backup_run


@shared_task(name="repository.tasks.backup_task", acks_late=True)
def backup_task() -> str:
    try:
        return backup_run(trigger="schedule").line()
    except BackupRunning as exc:
        return exc.detail


@shared_task(name="repository.tasks.fixity_check_task", acks_late=True)
def fixity_check_task(sample_percent: float | None = None) -> str:
    percent = settings.FIXITY_SAMPLE_PERCENT if sample_percent is None else sample_percent
    return fixity_check_run(sample_percent=percent).line()
