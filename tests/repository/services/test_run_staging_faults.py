"""Staging faults that are ours, not the author's: object storage failing while a run stages its inputs, and a
run that starts while the uploaded files are still being moved to their content-addressed keys."""

from pathlib import Path

import pytest

from repository import storage
from repository.models import Blob, ExecutionRun
from repository.services import runs
from repository.services.blobs import blob_promote
from repository.services.runs import InfrastructureError, run_execute, run_request
from tests.factories import demo_draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_run(user, no_queue, local_blob_storage):
    return run_request(version=demo_draft(user), requested_by=user)


def test_storage_failing_while_staging_is_retried_and_gives_no_verdict(queued_run):
    data_blob = queued_run.version.files.exclude(path=queued_run.notebook_path).get().blob
    storage.blob_storage().delete(data_blob.storage_key)  # the bytes we hold cannot be read

    with pytest.raises(InfrastructureError) as failure:
        run_execute(run_pk=queued_run.pk)

    assert "could not be read from our storage" in str(failure.value)
    run = ExecutionRun.objects.get(pk=queued_run.pk)
    assert run.status == ExecutionRun.Status.QUEUED and run.verdict == ""  # back in the queue, for the retry


def test_a_run_starting_before_the_uploads_were_moved_stages_from_their_final_keys(queued_run, tmp_path):
    # As if the promote tasks had not run yet: every file still at the temporary key its upload wrote.
    for version_file in queued_run.version.files.select_related("blob"):
        blob = version_file.blob
        temporary = storage.temporary_key()
        with storage.open_blob(blob.storage_key) as source:
            storage.blob_storage().save(temporary, source)
        Blob.objects.filter(pk=blob.pk).update(storage_key=temporary)
    run = ExecutionRun.objects.select_related("version").get(pk=queued_run.pk)
    workdir = Path(tmp_path / "work")
    workdir.mkdir()

    runs._stage(run, workdir)
    # The promote task arriving now (or having run meanwhile) finds nothing left to do and loses nothing.
    for version_file in run.version.files.select_related("blob"):
        assert not storage.is_temporary_key(Blob.objects.get(pk=version_file.blob_id).storage_key)
        assert blob_promote(blob_pk=version_file.blob_id) == Blob.objects.get(pk=version_file.blob_id).storage_key
        assert (workdir / version_file.path).read_bytes()
