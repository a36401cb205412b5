"""Celery's autodiscover_tasks() imports `<app>.tasks`; the harvester's tasks live in harvest/harvester/tasks.py."""

from harvest.harvester.tasks import harvest_source_task

__all__ = ["harvest_source_task"]
