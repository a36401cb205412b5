"""The fixity check: primary objects and backup copies re-read and hashed, results kept per blob, corrupt or
missing primary objects repaired from the backup, admins e-mailed about mismatches."""

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from repository.backup.fixity import fixity_check_run, fixity_sample
from repository.backup.models import BackupCopy, FixityCheck
from repository.backup.services import backup_run
from repository.models import AuditEvent, Blob
from repository.storage import blob_storage
from tests.factories import UserFactory, published_version
from tests.repository.backup.helpers import (
    corrupt_primary,
    corrupt_volume_member,
    primary_bytes,
    random_bytes,
    sha256,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(db):
    return UserFactory(is_superuser=True, is_staff=True, email="keeper@example.org")


@pytest.fixture
def backed_up(owner, moderator):
    version = published_version(owner, moderator, extra_files={"results.bin": random_bytes(50_000)})
    backup_run()
    return version


def test_all_intact_every_blob_gets_a_result_and_the_copies_a_verification_time(backed_up, admin, capsys):
    call_command("fixity_check")

    assert "Checked 3 file(s)" in capsys.readouterr().out
    results = FixityCheck.objects.all()
    assert len(results) == 3
    assert all(r.primary_ok and r.backup_ok and not r.repaired and r.last_failure_at is None for r in results)
    assert not BackupCopy.objects.filter(verified_at__isnull=True).exists()
    assert mail.outbox == []


def test_a_corrupted_primary_object_is_found_repaired_from_the_backup_audited_and_mailed(backed_up, admin, capsys):
    blob = backed_up.files.get(path="results.bin").blob
    corrupt_primary(blob)

    with pytest.raises(CommandError, match="1 file"):
        call_command("fixity_check")

    assert sha256(primary_bytes(blob)) == blob.sha256
    result = FixityCheck.objects.get(blob=blob)
    assert result.primary_ok is False and result.backup_ok is True and result.repaired
    assert "repaired from backup volume" in result.detail and result.last_failure_at is not None
    event = AuditEvent.objects.get(action="blob.repair")
    assert event.data["sha256"] == blob.sha256 and event.data["storage_key"] == blob.storage_key
    (message,) = mail.outbox
    assert message.to == ["keeper@example.org"] and blob.sha256 in message.body
    assert "1 repaired" in message.subject
    assert "Mismatch: sha256:" in capsys.readouterr().err
    # The next check finds everything in order again.
    mail.outbox.clear()
    assert fixity_check_run().ok and mail.outbox == []


def test_a_missing_primary_object_is_restored_from_the_backup(backed_up, settings):
    settings.ADMINS = [("Ops", "ops@example.org")]
    blob = backed_up.files.get(path="thermal.ipynb").blob
    blob_storage().delete(blob.storage_key)

    summary = fixity_check_run()

    assert (summary.primary_bad, summary.repaired) == (1, 1)
    assert sha256(primary_bytes(blob)) == blob.sha256
    assert "missing" in FixityCheck.objects.get(blob=blob).detail
    assert mail.outbox[0].to == ["ops@example.org"]


def test_a_corrupted_backup_copy_is_reported_and_never_used_for_a_repair(backed_up, backup_dir, admin):
    blob = backed_up.files.get(path="results.bin").blob
    corrupt_volume_member(backup_dir, blob)
    corrupt_primary(blob)
    damaged_primary = primary_bytes(blob)

    summary = fixity_check_run()

    assert (summary.primary_bad, summary.backup_bad, summary.repaired) == (1, 1, 0)
    result = FixityCheck.objects.get(blob=blob)
    assert result.primary_ok is False and result.backup_ok is False and not result.repaired
    assert primary_bytes(blob) == damaged_primary  # nothing was written from a bad copy
    assert BackupCopy.objects.get(blob=blob).verified_at is None
    assert "backup" in mail.outbox[0].body and not AuditEvent.objects.filter(action="blob.repair").exists()


def test_a_blob_without_a_backup_copy_is_checked_in_primary_storage_only(owner, moderator, admin):
    version = published_version(owner, moderator)

    summary = fixity_check_run()

    assert summary.ok and summary.backup_unchecked == 2
    assert set(FixityCheck.objects.values_list("primary_ok", "backup_ok")) == {(True, None)}
    assert version.files.count() == 2


def test_a_sample_checks_the_least_recently_checked_blobs_first(backed_up, capsys):
    assert len(fixity_sample(50)) == 2  # ceil(3 * 50 %)
    call_command("fixity_check", "--sample", "34")
    first = set(FixityCheck.objects.values_list("blob_id", flat=True))
    call_command("fixity_check", "--sample", "67")
    assert len(first) == 2 and set(FixityCheck.objects.values_list("blob_id", flat=True)) == set(
        Blob.objects.values_list("pk", flat=True))

    with pytest.raises(CommandError, match="not a percentage"):
        call_command("fixity_check", "--sample", "0")


@pytest.mark.s3
def test_fixity_repairs_an_s3_primary_object_from_a_cold_s3_backup(owner, moderator, s3_blob_storage, s3_backup,
                                                                    admin):
    primary, bucket = s3_blob_storage
    version = published_version(owner, moderator, extra_files={"results.bin": random_bytes(40_000)})
    backup_run()
    blob = version.files.get(path="results.bin").blob
    primary.put_object(Bucket=bucket, Key=blob.storage_key, Body=b"rotten" * 100)

    summary = fixity_check_run()

    assert (summary.primary_bad, summary.repaired, summary.backup_bad) == (1, 1, 0)
    body = primary.get_object(Bucket=bucket, Key=blob.storage_key)["Body"].read()
    assert sha256(body) == blob.sha256
    assert FixityCheck.objects.get(blob=blob).backup_ok is True


def test_the_scheduled_task_checks_the_configured_sample(backed_up, settings):
    from repository.backup.tasks import fixity_check_task

    settings.FIXITY_SAMPLE_PERCENT = 100

    assert "Checked 3 file(s)" in fixity_check_task.apply().get()
    assert "Checked 1 file(s)" in fixity_check_task.apply(kwargs={"sample_percent": 10}).get()
