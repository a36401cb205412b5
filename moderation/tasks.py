"""Celery tasks of moderation: take primary keys, call one function, own only the retry policy."""

from celery import shared_task

# Bounded (moderation/diff.py caps the lines diffed), so this is far above the worst case found (about 1 s).
CELL_DIFF_SOFT_LIMIT = 120


@shared_task(acks_late=True, soft_time_limit=CELL_DIFF_SOFT_LIMIT, time_limit=CELL_DIFF_SOFT_LIMIT + 30)
def cell_diff_prepare_task(version_pk: int) -> str:
    """Fill the shared cache with the notebook cell diff the request page shows for `version_pk`."""
    from moderation.diff import cell_diff_prepare

    return cell_diff_prepare(version_pk=version_pk)
