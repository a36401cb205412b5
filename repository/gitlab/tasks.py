"""Celery tasks of the GitLab app: take primary keys, call one service, own only the retry policy.

The task names are the ones these tasks had in repository/tasks.py: messages queued before the move refer to
them by name.
"""

from celery import shared_task

from repository.gitlab.client import GitLabError, GitLabUnavailable
from repository.gitlab.services.imports import gitlab_import_execute, gitlab_import_mark_failed
from repository.gitlab.services.mirror import version_mirror


@shared_task(name="repository.tasks.gitlab_mirror_task", bind=True, acks_late=True, max_retries=8)
def gitlab_mirror_task(self, version_pk: int) -> str:
    """Mirror a published version to GitLab; GitLab being unavailable is retried with backoff (idempotent)."""
    try:
        return version_mirror(version_pk=version_pk)
    except GitLabUnavailable as exc:
        if self.request.retries >= self.max_retries:
            return f"not mirrored: {exc.detail}"
        raise self.retry(exc=exc, countdown=min(3600, 60 * 2**self.request.retries)) from exc
    except GitLabError as exc:  # refused: a configuration problem that retrying will not fix
        return f"not mirrored: {exc.detail}"


@shared_task(name="repository.tasks.gitlab_import_task", bind=True, acks_late=True, max_retries=5)
def gitlab_import_task(self, import_pk: int) -> str:
    """Import a ref of a linked GitLab project as a new version draft; GitLab being unavailable is retried."""
    try:
        row = gitlab_import_execute(import_pk=import_pk)
    except GitLabUnavailable as exc:
        if self.request.retries >= self.max_retries:
            gitlab_import_mark_failed(import_pk=import_pk, message=exc.detail)
            return "failed"
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc
    return row.status if row else "gone"
