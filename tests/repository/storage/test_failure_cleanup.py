"""What a failure leaves in the bucket is removed at once, not only by the garbage collector's 72-hour sweep: the
executed notebook a run stored just before the database refused its result. On moto's S3 server and PostgreSQL."""

import pytest
from django.db import DatabaseError, connection

from repository.models import Blob, ExecutionRun
from repository.services.runs import run_execute, run_request
from tests.factories import demo_draft
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
