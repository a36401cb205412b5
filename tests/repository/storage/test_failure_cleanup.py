"""What a failure leaves in the bucket is removed at once, not only by the garbage collector's 72-hour sweep: the
parts of an upload S3 failed in the middle of (as soon as S3 is back), and the executed notebook a run stored just
before the database refused its result. On moto's S3 server and PostgreSQL."""

import os

import pytest
from django.db import DatabaseError, connection

from repository.models import Blob, ExecutionRun
from repository.services.runs import run_execute, run_request
from tests.factories import demo_draft
from tests.repository.storage.test_upload_faults import MIB, CuttingProxy, s3_through
from tests.sandbox import needs_sandbox

pytestmark = [pytest.mark.django_db, pytest.mark.s3]


def keys(client, bucket) -> set[str]:
    return {item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])}


def blob_keys() -> set[str]:
    """Where the Blob rows say their bytes are (staging moves inputs to their content address on the way)."""
    return set(Blob.objects.values_list("storage_key", flat=True))


@pytest.fixture
def database_refuses_finished_runs():
    """A trigger in PostgreSQL that fails every write recording a finished run: the database error comes from the
    database, after the run stored its executed notebook."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL trigger")
    table = ExecutionRun._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("""CREATE FUNCTION refuse_finished_run() RETURNS trigger AS $$
            BEGIN IF NEW.status = 'finished' THEN RAISE EXCEPTION 'the database is going away'; END IF;
            RETURN NEW; END $$ LANGUAGE plpgsql""")
        cursor.execute(f"CREATE TRIGGER refuse_finished_run BEFORE UPDATE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION refuse_finished_run()")
    yield  # the test's transaction rolls both back


@needs_sandbox
@pytest.mark.postgres
def test_an_executed_notebook_stored_before_a_database_error_is_deleted_at_once(user, s3_blob_storage,
                                                                                database_refuses_finished_runs):
    client, bucket = s3_blob_storage
    run = run_request(version=demo_draft(user), requested_by=user)
    blobs_before = Blob.objects.count()

    with pytest.raises(DatabaseError, match="going away"):
        run_execute(run_pk=run.pk)

    assert Blob.objects.count() == blobs_before
    assert keys(client, bucket) == blob_keys()  # the executed notebook's object went with the failed transaction


@needs_sandbox
def test_a_finished_run_keeps_its_executed_notebook(user, s3_blob_storage):
    client, bucket = s3_blob_storage
    run = run_request(version=demo_draft(user), requested_by=user)

    run = run_execute(run_pk=run.pk)

    assert run.executed_notebook is not None
    assert run.executed_notebook.storage_key in keys(client, bucket)
    assert keys(client, bucket) == blob_keys()


def test_the_parts_of_an_upload_s3_failed_in_the_middle_of_are_aborted_as_soon_as_s3_is_back(
        api, s3_blob_storage, s3_endpoint, settings, monkeypatch):
    from repository import tasks

    queued = []
    monkeypatch.setattr(tasks.temporary_upload_discard_task, "delay", queued.append)
    client, bucket = s3_blob_storage
    host, port = s3_endpoint.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port)), cut_after=7 * MIB)  # after the first 5 MiB part was stored
    record_id = api.post("/api/records", {}, format="json").json()["id"]
    s3_through(settings, proxy.url, bucket)

    response = api.put(f"/api/records/{record_id}/draft/files/data/big.bin", os.urandom(16 * MIB),
                       content_type="application/octet-stream")

    assert response.status_code == 503
    unfinished = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [upload["Key"] for upload in unfinished] == queued  # S3 was gone: its removal waits in a task

    s3_through(settings, s3_endpoint, bucket)  # S3 is back; the task's next try
    assert tasks.temporary_upload_discard_task.apply(args=[queued[0]]).get() == \
        f"aborted 1 unfinished uploads to {queued[0]}"

    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_task_never_discards_a_content_addressed_object(s3_blob_storage):
    from repository.errors import ProtectedObject
    from repository.storage import discard_temporary

    with pytest.raises(ProtectedObject):
        discard_temporary("blobs/sha256/ab/cd/" + "ab" * 32)
