"""`fixity_check_run`: re-read blobs in primary storage and in the backup tier, compare their sha256, record the
result per blob (FixityCheck), repair primary objects from the backup and tell the admins about any mismatch.

Which blobs: `sample_percent` of all blobs, the least recently checked first (never checked before all others),
so that a scheduled check of a few percent a night covers every blob within a predictable number of nights.

Per blob: the primary object is streamed and hashed; the backup copy (if the blob has one) is read straight from
its volume with a ranged read of its member. A volume in an archive storage class is first restored on request;
until S3 has done so the backup side stays unchecked (`backup_ok` None) and the blob is checked again first next
time. A primary object that is missing or does not match is rewritten from the backup copy, whose bytes are
verified before they are written, then read back; each repair is an AuditEvent ("blob.repair"). One e-mail per
run lists every mismatch: to settings.ADMINS, else to the active superusers with an e-mail address.
"""

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Case, F, IntegerField, Q, Value, When
from django.utils import timezone

from repository.backup.errors import BackupObjectCold, BackupTargetError
from repository.backup.models import BackupCopy, FixityCheck
from repository.backup.primary import Mismatch, primary_check, primary_write, spool_verified
from repository.backup.targets import BackupTarget, target_from_location
from repository.models import Blob
from repository.services.admin_mail import admins_tell
from repository.services.audit import audit_event_append
from repository.storage import STORAGE_ERRORS

logger = logging.getLogger(__name__)
BATCH = 500


@dataclass
class FixitySummary:
    checked: int = 0
    bytes: int = 0
    primary_bad: int = 0
    backup_bad: int = 0
    backup_unchecked: int = 0
    repaired: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def line(self) -> str:
        text = (f"Checked {self.checked} file(s) ({self.bytes:,} bytes) in {self.seconds:.1f} s: "
                f"{self.primary_bad} bad in primary storage ({self.repaired} repaired from the backup), "
                f"{self.backup_bad} bad in the backup")
        if self.backup_unchecked:
            text += f", {self.backup_unchecked} backup cop(ies) not checked (no copy yet or in cold storage)"
        return text


def fixity_sample(sample_percent: float) -> list[int]:
    """The pks of the blobs to check: `sample_percent` of them, least recently checked first."""
    total = Blob.objects.count()
    count = min(total, math.ceil(total * max(0.0, min(sample_percent, 100.0)) / 100))
    order = Blob.objects.annotate(pending=Case(
        When(Q(fixity__backup_ok__isnull=True) & Q(backup_copy__isnull=False), then=Value(0)),
        default=Value(1), output_field=IntegerField()))
    return list(order.order_by("pending", F("fixity__checked_at").asc(nulls_first=True), "pk")
                .values_list("pk", flat=True)[:count])


def fixity_check_run(*, sample_percent: float = 100.0,
                     progress: Callable[[int, int], None] | None = None) -> FixitySummary:
    """Check a sample of blobs (see the module docstring); `progress(blobs_done, total)` after each blob."""
    started = time.monotonic()
    summary = FixitySummary()
    pks = fixity_sample(sample_percent)
    checker = _Checker(summary)
    for start in range(0, len(pks), BATCH):
        blobs = Blob.objects.filter(pk__in=pks[start:start + BATCH]).select_related("backup_copy__volume")
        for blob in sorted(blobs, key=lambda b: b.pk):
            checker.check(blob)
            if progress is not None:
                progress(1, len(pks))
    summary.seconds = time.monotonic() - started
    if summary.mismatches:
        _notify_admins(summary)
    return summary


class _Checker:
    def __init__(self, summary: FixitySummary):
        self.summary = summary
        self.targets: dict[str, BackupTarget] = {}
        self.readable: dict[tuple[str, str], bool] = {}

    def _target(self, location: str) -> BackupTarget:
        if location not in self.targets:
            self.targets[location] = target_from_location(location)
        return self.targets[location]

    def check(self, blob: Blob) -> None:
        now = timezone.now()
        primary = primary_check(blob.storage_key, blob.sha256, blob.size)
        copy = getattr(blob, "backup_copy", None)
        backup_ok, backup_detail = self._backup(blob, copy) if copy else (None, "no backup copy yet")
        details = []
        repaired = False
        if not primary.ok:
            self.summary.primary_bad += 1
            details.append(f"primary {blob.storage_key}: {primary.detail}")
            if backup_ok:
                repaired, text = self._repair(blob, copy, primary.detail)
                details.append(text)
        if backup_ok is False:
            self.summary.backup_bad += 1
            details.append(f"backup {copy.volume.name}:{copy.member}: {backup_detail}")
        elif backup_ok is None:
            self.summary.backup_unchecked += 1
            details.append(f"backup: {backup_detail}")
        elif copy is not None:
            BackupCopy.objects.filter(pk=copy.pk).update(verified_at=now)
        if not primary.ok or backup_ok is False:
            self.summary.mismatches.append(f"sha256:{blob.sha256} — " + "; ".join(details))
        self.summary.checked += 1
        self.summary.bytes += blob.size
        failed = not primary.ok or backup_ok is False
        defaults = {"checked_at": now, "primary_ok": primary.ok, "backup_ok": backup_ok, "repaired": repaired,
                    "detail": "; ".join(details)[:5000]}
        if failed:
            defaults["last_failure_at"] = now
        FixityCheck.objects.update_or_create(blob=blob, defaults=defaults)

    def _readable(self, target: BackupTarget, name: str) -> bool:
        key = (target.location, name)
        if key not in self.readable:
            self.readable[key] = not target.make_readable([name])
        return self.readable[key]

    def _member_pieces(self, copy: BackupCopy, size: int):
        target = self._target(copy.volume.target)
        return target.read_range(copy.volume.object_name, copy.data_offset, size)

    def _backup(self, blob: Blob, copy: BackupCopy) -> tuple[bool | None, str]:
        try:
            target = self._target(copy.volume.target)
            if not self._readable(target, copy.volume.object_name):
                return None, f"{copy.volume.name} is in cold storage; S3 was asked to restore it"
            digest, length = hashlib.sha256(), 0
            for piece in self._member_pieces(copy, blob.size):
                digest.update(piece)
                length += len(piece)
        except BackupObjectCold as exc:
            return None, exc.detail
        except BackupTargetError as exc:
            return False, exc.detail
        if length != blob.size or digest.hexdigest() != blob.sha256:
            return False, f"{length} bytes with sha256 {digest.hexdigest()} instead of {blob.size} bytes"
        return True, ""

    def _repair(self, blob: Blob, copy: BackupCopy, reason: str) -> tuple[bool, str]:
        try:
            with spool_verified(self._member_pieces(copy, blob.size), blob.sha256, blob.size) as spool:
                primary_write(blob.storage_key, spool)
        except (Mismatch, BackupTargetError) as exc:
            return False, f"not repaired: the backup copy could not be read back intact ({exc})"
        except STORAGE_ERRORS as exc:
            return False, f"not repaired: writing to primary storage failed ({exc})"
        after = primary_check(blob.storage_key, blob.sha256, blob.size)
        if not after.ok:
            return False, f"not repaired: the rewritten object reads back wrong ({after.detail})"
        self.summary.repaired += 1
        audit_event_append(actor=None, action="blob.repair", data={
            "sha256": blob.sha256, "storage_key": blob.storage_key, "reason": reason,
            "from": f"{copy.volume.target}/{copy.volume.object_name}:{copy.member}"})
        logger.warning("Fixity: repaired primary object %s (sha256 %s) from backup volume %s", blob.storage_key,
                       blob.sha256, copy.volume.name)
        return True, f"repaired from backup volume {copy.volume.name}"


def _notify_admins(summary: FixitySummary) -> None:
    subject = (f"Fixity check: {len(summary.mismatches)} file(s) did not match "
               f"({summary.repaired} repaired from the backup)")
    body = summary.line() + ".\n\n" + "\n".join(summary.mismatches) + "\n"
    try:
        if not admins_tell(subject, body):
            logger.error("Fixity mismatches, and no admin to tell (set ADMINS): %s", body)
    except Exception:  # noqa: BLE001 - the results are recorded; a mail server being down must not hide them
        logger.exception("Could not e-mail the fixity check's mismatches")
