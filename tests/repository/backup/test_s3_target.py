"""The backup tier's bucket (repository/backup/s3_target.py): what S3 answers becomes the backup tier's own errors,
with messages that say which object, where, and what S3 said."""

import logging

import pytest

from repository.backup.errors import BackupObjectCold, BackupObjectMissing, BackupTargetError
from repository.backup.s3_target import S3Target
from repository.backup.targets import target_from_settings

pytestmark = pytest.mark.s3


def test_a_missing_object_is_backup_object_missing(s3_backup):
    target = target_from_settings()

    assert target.exists("catalog.json") is False
    with pytest.raises(BackupObjectMissing) as raised:
        target.read_bytes("catalog.json")
    assert str(raised.value) == f"catalog.json is missing from s3://{s3_backup[1]}."


def test_an_object_in_cold_storage_is_backup_object_cold_until_restored(s3_backup):
    client, bucket = s3_backup
    client.put_object(Bucket=bucket, Key="volumes/v.tar", Body=b"tar", StorageClass="DEEP_ARCHIVE")
    target = target_from_settings()

    with pytest.raises(BackupObjectCold) as raised:
        list(target.read_range("volumes/v.tar", 0, 3))
    assert str(raised.value) == f"volumes/v.tar in s3://{bucket} is in cold storage and not restored yet."

    assert target.make_readable(["volumes/v.tar"]) == []  # moto restores at once
    assert b"".join(target.read_range("volumes/v.tar", 1, 2)) == b"ar"


def test_writing_into_a_missing_bucket_says_the_bucket_does_not_exist(s3_backup, s3_endpoint):
    target = S3Target(bucket="no-such-bucket-here", endpoint_url=s3_endpoint, region_name="us-east-1",
                      access_key="testing", secret_key="testing")

    with pytest.raises(BackupTargetError) as raised:
        target.write_bytes("catalog.json", b"{}")
    assert str(raised.value) == "The bucket no-such-bucket-here does not exist (s3://no-such-bucket-here)."


def test_an_endpoint_that_does_not_answer_is_a_one_line_error_saying_so():
    target = S3Target(bucket="b", prefix="p", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                      access_key="x", secret_key="y")

    with pytest.raises(BackupTargetError) as raised:
        target.check()
    assert str(raised.value).startswith("Cannot reach the S3 endpoint for s3://b/p: Could not connect")
    assert "\n" not in str(raised.value)


def test_a_bucket_without_object_lock_says_so_in_the_log(s3_backup, caplog):
    client, bucket = s3_backup
    client.create_bucket(Bucket=f"{bucket}-plain")
    target = S3Target(bucket=f"{bucket}-plain", endpoint_url=client.meta.endpoint_url, region_name="us-east-1",
                      access_key="testing", secret_key="testing")

    with caplog.at_level(logging.INFO, logger="repository.backup.s3_target"):
        assert target.object_lock_enabled() is False

    assert f"Backup bucket {bucket}-plain: no object lock (ObjectLockConfigurationNotFoundError: " in caplog.text
    assert target_from_settings().object_lock_enabled() is True


def test_volumes_are_spooled_in_the_configured_folder_made_when_missing(s3_backup, settings, tmp_path):
    """A new machine or a fresh volume mount has no spool folder yet: the backup makes it rather than failing with
    "No such file or directory" halfway through its first volume."""
    settings.BACKUP_SPOOL_DIR = str(tmp_path / "spool" / "volumes")
    client, bucket = s3_backup
    client.put_object(Bucket=bucket, Key="volumes/v.tar", Body=b"volume bytes")

    with target_from_settings().open_read("volumes/v.tar") as volume:
        assert volume.read() == b"volume bytes"
        assert volume.name.startswith(settings.BACKUP_SPOOL_DIR)
