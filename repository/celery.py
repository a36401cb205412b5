"""The Celery app. Configuration comes from Django settings prefixed CELERY_; the beat schedule lives here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "repository.settings")

app = Celery("nbarchive")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    # The safety net behind doi_sync_task's own retries: DOIs still pending at the registrar are synced again.
    "doi-sync-pending": {"task": "repository.tasks.doi_sync_pending_task", "schedule": 60.0},
}
