"""/health/live and /health/ready as a kubelet or a load balancer sees them, against real components: PostgreSQL,
Redis with a real worker, moto's S3 server for the object store and the backup bucket. The workers use a Redis
database of their own (12): a worker of another test run on the same Redis would answer the broadcast too."""

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.celery_worker import celery_worker_on_redis

ROOT = Path(__file__).resolve().parents[3]


def _s3_storage(endpoint: str, bucket: str) -> dict:
    return {"BACKEND": "repository.integrations.s3.S3Storage",
            "OPTIONS": {"bucket_name": bucket, "endpoint_url": endpoint, "region_name": "us-east-1",
                        "access_key": "testing", "secret_key": "testing", "file_overwrite": True}}


@pytest.fixture
def s3_tiers(settings, s3_blob_storage, s3_endpoint):
    """Blobs and the backup tier in two buckets on the loopback S3 server."""
    client, _ = s3_blob_storage
    backup = f"backup-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=backup)
    settings.STORAGES = {**settings.STORAGES, "backup": _s3_storage(s3_endpoint, backup)}


def test_live_answers_without_touching_anything_even_for_an_unknown_host(client):
    response = client.get("/health/live", HTTP_HOST="10.1.2.3:8000")  # a kubelet probes the pod's address

    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


@pytest.mark.django_db(transaction=True)
def test_ready_when_every_part_answers(client, s3_tiers):
    with celery_worker_on_redis(queues=["celery", "verification", "dois"], redis_db=12):
        response = client.get("/health/ready", HTTP_HOST="10.1.2.3:8000")

    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready" and body["failed"] == []
    assert set(body["checks"]) == {"database", "broker", "workers", "object_store", "backup_target"}
    assert body["checks"]["workers"]["queues"] == {"celery": 1, "verification": 1, "dois": 1}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db(transaction=True)
def test_not_ready_names_the_queue_no_worker_consumes(client, s3_tiers):
    with celery_worker_on_redis(queues=["celery"], redis_db=12):
        response = client.get("/health/ready")

    body = response.json()
    assert response.status_code == 503
    assert body["failed"] == ["workers"]
    assert "verification" in body["checks"]["workers"]["error"]
    assert body["checks"]["workers"]["queues"] == {"celery": 1, "verification": 0, "dois": 0}


@pytest.mark.django_db
def test_not_ready_names_a_missing_backup_bucket(client, settings, s3_endpoint):
    settings.STORAGES = {**settings.STORAGES, "backup": _s3_storage(s3_endpoint, "no-such-bucket-here")}

    body = client.get("/health/ready").json()

    assert "backup_target" in body["failed"]
    assert "no-such-bucket-here" in body["checks"]["backup_target"]["error"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_part_down_is_named_and_no_password_or_key_appears(tmp_path):
    """Passwords in DATABASE_URL and the broker URL, S3 keys: nothing answers, every check fails, and neither the
    answer nor anything logged meanwhile shows one of them."""
    secrets = {"database": "db-Pa55word-9f8e7d", "broker": "br0ker-Pa55-4c3b2a", "s3": "S3secretKEY/abc+123XYZ",
               "s3 key id": "AKIAEXAMPLEKEYID42"}
    port = _closed_port()
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("S3_", "BACKUP_S3"))},
        "DJANGO_SETTINGS_MODULE": "repository.settings", "NBARCHIVE_VAR_DIR": str(tmp_path), "LOG_LEVEL": "DEBUG",
        "DATABASE_URL": f"postgres://nbarchive:{secrets['database']}@127.0.0.1:{port}/nbarchive",
        "CELERY_BROKER_URL": f"redis://:{secrets['broker']}@127.0.0.1:{port}/0",
        "S3_BUCKET": "files", "BACKUP_S3_BUCKET": "backup", "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "S3_ACCESS_KEY_ID": secrets["s3 key id"], "S3_SECRET_ACCESS_KEY": secrets["s3"],
        "HEALTH_CHECK_TIMEOUT": "2",
    }
    script = ("import django, json; django.setup(); from django.test import Client; "
              "r = Client().get('/health/ready'); print(json.dumps({'status': r.status_code, "
              "'body': r.content.decode()}))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True,
                            text=True, timeout=60)

    answer = json.loads(result.stdout.strip().splitlines()[-1])
    body = json.loads(answer["body"])
    assert answer["status"] == 503
    assert set(body["failed"]) == {"database", "broker", "workers", "object_store", "backup_target"}
    assert all(body["checks"][name]["error"] for name in body["failed"])
    for name, secret in secrets.items():
        assert secret not in answer["body"], f"the {name} secret is in the answer"
        assert secret not in result.stderr, f"the {name} secret was logged"
