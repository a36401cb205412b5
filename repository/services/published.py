"""Changes to published versions: metadata corrections (audited, re-sent to DataCite, files never change) and
withdrawal by an admin (a tombstone; the DOI stays registered and resolves to it)."""

from django.db import transaction
from django.utils import timezone

from repository import hooks
from repository.errors import Conflict, InvalidInput, PermissionDenied
from repository.models import Version
from repository.permissions import is_owner
from repository.selectors import changed_fields, version_metadata
from repository.services.audit import audit_event_append
from repository.services.dois import doi_metadata_changed, doi_withdraw_version
from repository.services.drafts import metadata_write
from repository.services.file_access import access_change_refusals

# What a correction may not touch: they decide what was verified and accepted.
FROZEN_FIELDS = ("container_image", "notebook_path", "comparison_tolerance", "data_references", "resource_type")
MAX_REASON_LENGTH = 2000
# What submission requires for the citation (services/submission.py): a correction may change them, never empty them.
KEPT_ON_CORRECTION = (("title", "a title"), ("description", "a description"), ("creators", "at least one creator"),
                      ("license", "a license"))


def _locked_public(version: Version) -> Version:
    return Version.objects.select_for_update().select_related("record").get(pk=version.pk)


@transaction.atomic
def version_correct_metadata(*, version: Version, actor, metadata: dict, reason: str = "",
                             approved_by=None) -> Version:
    """Correct a published version's citation metadata (a typo, a new related identifier). The previous and new
    metadata are kept in the audit trail, shown on the record's page (`selectors.record_corrections`) and to the
    version's moderators (the `version_corrected` event); the DOI's metadata is sent again. Owners and admins may
    correct, at once: a typo must not wait for a review. The files' access may change only towards open
    (`services.file_access.access_change_refusals`); `access` left out keeps it.

    Unless the community that accepted the version reviews corrections (`hooks.corrections_reviewed`): then the
    correction, validated, is handed to `hooks.hold_correction` and nothing changes yet; the returned version has
    `correction_held = True`. A moderator's approval applies it with `approved_by` (recorded in the audit trail).
    """
    version = _locked_public(version)
    if not (is_owner(actor, version.record) or getattr(actor, "is_superuser", False)):
        raise PermissionDenied("Only the owners of a record or an admin can correct its metadata.")
    if version.state not in (Version.State.PUBLISHED, Version.State.PUBLISHING):
        raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}; only published "
                       "versions are corrected this way (drafts are simply edited).")
    before = version_metadata(version)
    # PUT replaces the metadata, so a body that leaves these out would clear them: a citation without a title or
    # creators, which DataCite refuses (the DOI would stay out of date) and readers could no longer cite.
    emptied = {field: [f"A published version keeps {what}; it can be corrected, not removed."]
               for field, what in KEPT_ON_CORRECTION if not metadata.get(field)}
    if emptied:
        raise InvalidInput("A correction cannot remove what a published version is cited by.", field_errors=emptied)
    changed_frozen = [f for f in FROZEN_FIELDS if f in metadata and metadata[f] != before[f]]
    if changed_frozen:
        raise InvalidInput("A published version's files and what was verified cannot change; start a new version.",
                           field_errors={f: ["Cannot be changed on a published version."] for f in changed_frozen})
    metadata = {**metadata, **{f: before[f] for f in FROZEN_FIELDS}}
    reason = reason[:MAX_REASON_LENGTH]
    version.correction_held = False
    if approved_by is None and hooks.corrections_reviewed(version, actor):
        return _hold_for_review(version, actor=actor, metadata=metadata, reason=reason, before=before)
    metadata_write(version, metadata)
    after = version_metadata(version)
    _refuse_closing(before, after)
    if after == before:
        return version
    version.public_changed_at = timezone.now()
    version.save(update_fields=["public_changed_at", "updated"])
    fields = changed_fields(before, after)
    data = {"reason": reason, "before": before, "after": after, "fields": fields}
    if approved_by is not None:
        data["approved_by"] = approved_by.get_username()
    audit_event_append(actor=actor, action="version.correct", version=version, data=data)
    doi_metadata_changed(version)
    hooks.send("version_corrected", version=version, actor=actor, fields=fields, reason=reason)
    if after["access"] != before["access"]:
        hooks.send("version_access_changed", version=version, actor=actor, before=before["access"],
                   after=after["access"])
    return version


def _refuse_closing(before: dict, after: dict) -> None:
    """Published files may only become more open (services/file_access.py); the caller's transaction is undone."""
    refusals = access_change_refusals(before["access"], after["access"])
    if refusals:
        raise InvalidInput("A published version's files can only become more open.", field_errors=refusals)


def _hold_for_review(version: Version, *, actor, metadata: dict, reason: str, before: dict) -> Version:
    # Validated exactly as it would apply, in a savepoint that is then undone: a held correction must be one that
    # a moderator can apply as it is.
    with transaction.atomic():
        metadata_write(version, metadata)
        after = version_metadata(version)
        _refuse_closing(before, after)
        transaction.set_rollback(True)
    version = _locked_public(version)
    version.correction_held = False
    if after != before:
        hooks.hold_correction(version=version, actor=actor, metadata=metadata, fields=changed_fields(before, after),
                              reason=reason)
        version.correction_held = True
    return version


@transaction.atomic
def version_withdraw(*, version: Version, actor, reason: str) -> Version:
    """Withdraw a published version (an admin's decision, with a reason shown on the tombstone)."""
    if not getattr(actor, "is_superuser", False):
        raise PermissionDenied("Only an admin can withdraw a published version.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the version is withdrawn; readers see it.",
                           field_errors={"reason": ["This field is required."]})
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput("The reason is too long.",
                           field_errors={"reason": [f"At most {MAX_REASON_LENGTH} characters."]})
    version = _locked_public(version)
    if version.state != Version.State.PUBLISHED:
        raise Conflict(f"Version {version.number} is {version.get_state_display().lower()}; only a published "
                       "version can be withdrawn.")
    version.state = Version.State.WITHDRAWN
    version.withdrawn_at = version.public_changed_at = timezone.now()
    version.withdrawal_reason = reason
    version.save(update_fields=["state", "withdrawn_at", "withdrawal_reason", "public_changed_at", "updated"])
    doi_withdraw_version(version)
    hooks.send("version_withdrawn", version=version)  # e.g. the search index
    audit_event_append(actor=actor, action="version.withdraw", version=version, data={"reason": reason})
    return version
