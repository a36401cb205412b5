"""Lifting embargoes: early, by an owner or an admin (`embargo_lift`), or once their day has come, by the daily
job (`embargoes_lift_due`: `manage.py lift_embargoes` and the beat task `embargoes_lift_due_task`).

The access policy already opens an embargoed version's files on its day (`access.policy.effective_access`); the
lift records it: the version becomes open and its embargo's day and reason are cleared (the audit event keeps
them as `before`), so it reads as any open version and a PUT of what the API shows stays valid. A lift moves the
version's OAI-PMH datestamp (harvesters fetch it again), sends its DOI metadata to DataCite again (the access in
rightsList), and tells listeners (`version_access_changed`: search index, OAI payloads).

Raises PermissionDenied (not an owner or admin) and Conflict (not a published version under embargo).
"""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from repository import hooks
from repository.access.policy import today
from repository.errors import Conflict, PermissionDenied
from repository.models import FileAccess, Version
from repository.permissions import can_correct_metadata
from repository.selectors import version_access
from repository.services.audit import audit_event_append
from repository.services.dois import doi_metadata_changed

LIFTABLE_STATES = (Version.State.PUBLISHING, Version.State.PUBLISHED)


@transaction.atomic
def embargo_lift(*, version: Version, actor) -> Version:
    """Open an embargoed version's files now, before (or on) the embargo's day."""
    version = Version.objects.select_for_update().select_related("record").get(pk=version.pk)
    if not can_correct_metadata(actor, version.record):
        raise PermissionDenied("Only the owners of a record or an admin can lift an embargo.")
    if version.state not in LIFTABLE_STATES:
        raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}; only a published "
                       "version's embargo is lifted (a draft's access is simply edited).")
    if version.access_files != FileAccess.EMBARGOED:
        raise Conflict(f"Version {version.number} is not under embargo; its files are {version.access_files}.")
    return _lift(version, actor=actor, early=version.embargo_until > today())


def embargoes_due(*, on: datetime.date | None = None):
    """Published versions whose embargo ends on `on` (today) or before: the job's work."""
    return (Version.objects.filter(access_files=FileAccess.EMBARGOED, embargo_until__lte=on or today(),
                                   state__in=LIFTABLE_STATES)
            .select_related("record").order_by("embargo_until", "pk"))


def embargoes_lift_due(*, on: datetime.date | None = None) -> list[dict]:
    """Lift every embargo that has ended by `on` (today), each in its own transaction (one version's trouble does
    not hold up the others); returns what was lifted, oldest embargo first, as dicts of record id, version
    number, DOI and the embargo's day. Run twice, the second run finds nothing."""
    on = on or today()
    lifted = []
    for pk in embargoes_due(on=on).values_list("pk", flat=True):
        with transaction.atomic():
            version = Version.objects.select_for_update().select_related("record").get(pk=pk)
            if version.access_files != FileAccess.EMBARGOED or version.state not in LIFTABLE_STATES \
                    or version.embargo_until > on:
                continue  # lifted or corrected meanwhile
            ended = version.embargo_until
            _lift(version, actor=None, early=False)
        lifted.append({"record_id": version.record.public_id, "number": version.number, "doi": version.doi,
                       "embargo_until": ended})
    return lifted


def _lift(version: Version, *, actor, early: bool) -> Version:
    before = version_access(version)
    version.access_files, version.embargo_until, version.embargo_reason = FileAccess.OPEN, None, ""
    version.public_changed_at = timezone.now()  # the OAI-PMH datestamp: harvesters see the new access
    version.save(update_fields=["access_files", "embargo_until", "embargo_reason", "public_changed_at", "updated"])
    after = version_access(version)
    audit_event_append(actor=actor, action="version.embargo_lift", version=version,
                       data={"before": before, "after": after, "early": early})
    doi_metadata_changed(version)
    hooks.send("version_access_changed", version=version, actor=actor, before=before, after=after)
    return version
