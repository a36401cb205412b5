"""The Celery app. Configuration comes from Django settings prefixed CELERY_; the beat schedule lives here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "repository.settings")

app = Celery("nbarchive")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {}
