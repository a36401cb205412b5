"""The Celery app. Configuration comes from Django settings prefixed CELERY_; the beat schedule lives here."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "repository.settings")

app = Celery("nbarchive")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    # The safety net behind doi_sync_task's own retries: DOIs still pending at the registrar are synced again.
    "doi-sync-pending": {"task": "repository.tasks.doi_sync_pending_task", "schedule": 60.0},
    # Verification runs whose worker died (killed, out of memory, database lost) are queued again or ended.
    "runs-reap": {"task": "repository.tasks.runs_reap_task", "schedule": 60.0},
    # Published versions whose last verification is older than REVERIFY_INTERVAL_DAYS are re-run in their image.
    "reverify-due": {"task": "repository.tasks.reverify_due_task", "schedule": crontab(minute=15)},
    # The backup tier: new files and changed metadata to tape nightly, then a fixity check of a sample.
    "backup-nightly": {"task": "repository.tasks.backup_task", "schedule": crontab(hour=2, minute=0)},
    "fixity-check-nightly": {"task": "repository.tasks.fixity_check_task", "schedule": crontab(hour=4, minute=30)},
    # Primary storage: unused blobs are marked, and deleted once marked for BLOB_GC_GRACE_HOURS; crashed uploads'
    # temporary objects go too.
    "blob-gc-daily": {"task": "repository.tasks.blob_gc_task", "schedule": crontab(hour=3, minute=30)},
    # Embargoes whose day has come: files opened, DataCite and harvesters told (the access policy already opens
    # them at midnight UTC; this records it). Shortly after midnight, and hourly after that as a safety net.
    "embargoes-lift-due": {"task": "repository.tasks.embargoes_lift_due_task", "schedule": crontab(minute=5)},
    # Views and downloads: the events pages wrote become COUNTER-style counts on the landing page and in the API.
    "usage-aggregate": {"task": "repository.tasks.usage_aggregate_task", "schedule": 60.0},
}
