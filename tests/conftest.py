"""Fixtures shared by more than one test folder."""

import uuid

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # PBKDF2's deliberate slowness costs ~0.5 s per test user; no test here is about password strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """Each test starts with an empty cache: a test's rolled-back transaction also rolls back the search index's
    generation, so a later test could otherwise read counts cached for another test's documents."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def local_blob_storage(settings, tmp_path):
    """Every test gets its own empty local storage, unless it switches to S3 with `s3_blob_storage`."""
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                  "OPTIONS": {"location": str(tmp_path / "blobs")}},
    }
    return tmp_path / "blobs"


@pytest.fixture
def s3_blob_storage(settings, s3_endpoint):
    """Point the "blobs" storage at a fresh bucket on the loopback S3 server; return (boto3 client, bucket)."""
    return _s3_bucket_as_blobs(settings, s3_endpoint)


@pytest.fixture
def s3_checking_blob_storage(settings, s3_checking_endpoint):
    """Like s3_blob_storage, on the S3 server that checks each part's SHA-256 as real S3 does."""
    return _s3_bucket_as_blobs(settings, s3_checking_endpoint)


def _s3_bucket_as_blobs(settings, s3_endpoint):
    import boto3

    bucket = f"blobs-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {
            "BACKEND": "repository.integrations.s3.S3Storage",
            "OPTIONS": {"bucket_name": bucket, "endpoint_url": s3_endpoint, "region_name": "us-east-1",
                        "access_key": "testing", "secret_key": "testing", "file_overwrite": True},
        },
    }
    return client, bucket


@pytest.fixture
def eager_tasks():
    """Celery tasks run at once, in the process that queues them (a live server's thread, or the test's), as a
    worker would run them; no broker."""
    from repository.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def api(user):
    """An API client authenticated with a real personal access token of `user`."""
    from repository.services.tokens import token_create

    _, raw = token_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def no_queue(monkeypatch):
    """Verification tasks are recorded, as (args, kwargs) of `apply_async`, instead of being sent to a broker:
    the tests that use this call run_execute themselves."""
    from repository import tasks

    sent = []
    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *a, **k: sent.append((a, k)))
    return sent


def urlconf_rebuild() -> None:
    """Import the URLconf again from the settings as they are now, as a restarted server would: some routes exist
    only under some settings (the run-data links only with RUNNER=gitlab). The app's URLconf first, then the root
    one that includes it."""
    import importlib

    from django.urls import clear_url_caches

    import repository.urls
    import repository.web.urls

    importlib.reload(repository.web.urls)
    importlib.reload(repository.urls)
    clear_url_caches()


@pytest.fixture
def gitlab_runner(settings):
    """RUNNER=gitlab, with the URLconf such a server has (the signed run-data route); the usual one afterwards."""
    previous = settings.RUNNER
    settings.RUNNER = "gitlab"
    urlconf_rebuild()
    yield settings
    settings.RUNNER = previous
    urlconf_rebuild()
