"""Bringing versions through acceptance and the DOI sync in tests, with the real services."""

from django.db.models import F

from repository.models import DoiOutbox, Version
from repository.services.dois import doi_sync
from repository.services.versions import version_publish
from tests.repository.services.test_runs import demo_draft


def accept(version: Version, moderator) -> Version:
    """What a moderator's approval does to the version (the review request itself is not needed here)."""
    Version.objects.filter(pk=version.pk).update(state=Version.State.IN_REVIEW)
    return version_publish(version=version, actor=moderator)


def sync_pending(provider=None) -> list[str]:
    """Run the DOI sync of every pending outbox row once, as the Celery task would; returns the outcomes."""
    pending = DoiOutbox.objects.filter(synced_generation__lt=F("generation")).order_by("pk")
    return [doi_sync(outbox_pk=pk, provider=provider) for pk in pending.values_list("pk", flat=True)]


def published_version(owner, moderator, provider=None, **metadata) -> Version:
    version = accept(demo_draft(owner, **metadata), moderator)
    sync_pending(provider)
    version.refresh_from_db()
    assert version.state == Version.State.PUBLISHED, version.doi_outbox.last_error
    return version
