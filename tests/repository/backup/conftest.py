"""Fixtures of the backup tier's tests: a backup target of each test's own (a directory, or a bucket on the
loopback S3 server with object lock), an owner and a moderator."""

import uuid

import pytest

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    """Every test backs up into its own directory, unless it switches to a bucket with `s3_backup`."""
    settings.STORAGES = {
        **settings.STORAGES,
        "backup": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                   "OPTIONS": {"location": str(tmp_path / "backup")}},
    }
    settings.BACKUP_S3_PREFIX = ""
    return tmp_path / "backup"


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture
def s3_backup(settings, s3_endpoint):
    """A fresh backup bucket with object lock on the loopback S3 server, as the configured backup target, with
    volumes in DEEP_ARCHIVE; returns (boto3 client, bucket)."""
    bucket = f"backup-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    settings.STORAGES = {
        **settings.STORAGES,
        "backup": {
            "BACKEND": "repository.integrations.s3.S3Storage",
            "OPTIONS": {"bucket_name": bucket, "endpoint_url": s3_endpoint, "region_name": "us-east-1",
                        "access_key": "testing", "secret_key": "testing"},
        },
    }
    settings.BACKUP_S3_STORAGE_CLASS = "DEEP_ARCHIVE"
    settings.BACKUP_S3_OBJECT_LOCK_MODE = "GOVERNANCE"
    settings.BACKUP_S3_OBJECT_LOCK_DAYS = 1
    return client, bucket


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def moderator(db):
    return UserFactory()
