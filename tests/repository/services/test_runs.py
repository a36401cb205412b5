"""Verification runs through the services, with the real database, storage and sandbox.

The Celery hop is tested in tests/repository/test_tasks.py; here `run_execute` is called directly so each
test can look at what a run records.
"""

import hashlib

import pytest

from repository import demo
from repository.errors import Conflict, InvalidInput
from repository.models import ExecutionRun, Version
from repository.services.drafts import draft_update, record_create
from repository.services.runs import run_execute, run_request
from repository.services.submission import version_submit
from tests.factories import IMAGE, demo_draft, upload
from tests.sandbox import needs_sandbox

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_queue")]


def test_submitting_queues_one_verification_run_after_commit(user, no_queue, django_capture_on_commit_callbacks):
    version = demo_draft(user)

    with django_capture_on_commit_callbacks(execute=True):
        version_submit(version=version, actor=user)

    version.refresh_from_db()
    assert version.state == Version.State.IN_REVIEW and version.submitted_at is not None
    run = ExecutionRun.objects.get(version=version)
    assert run.status == "queued" and run.notebook_path == "thermal.ipynb" and run.container_image == IMAGE
    assert len(no_queue) == 1
    assert no_queue[0][1] == {"args": [run.pk], "queue": "verification"}


def test_an_incomplete_draft_cannot_be_submitted(user):
    version = record_create(owner=user, metadata={"title": "Only a title"})

    with pytest.raises(InvalidInput) as raised:
        version_submit(version=version, actor=user)

    assert "a license" in raised.value.detail
    assert Version.objects.get(pk=version.pk).state == "draft"
    assert not ExecutionRun.objects.exists()


def test_a_second_run_is_refused_while_one_is_queued(user):
    version = demo_draft(user)
    run_request(version=version, requested_by=user)

    with pytest.raises(Conflict):
        run_request(version=version, requested_by=user)


@needs_sandbox
def test_the_demo_draft_reproduces_and_the_run_records_everything(user):
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)

    run = run_execute(run_pk=run.pk)

    assert run.status == "finished" and run.verdict == "reproduced", run.message
    assert run.started_at <= run.finished_at and run.attempts == 1
    assert run.peak_memory_bytes and run.peak_memory_bytes > 0
    assert run.environment["runner"] == "local"
    assert run.report["summary"]["code_cells"] == 2
    assert run.executed_notebook is not None and run.executed_notebook.size > 0
    assert "cell" in run.logs


@needs_sandbox
def test_a_run_delivered_twice_executes_once(user):
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)
    run_execute(run_pk=run.pk)

    assert run_execute(run_pk=run.pk) is None
    assert ExecutionRun.objects.get(pk=run.pk).attempts == 1


def draft_reading_published_data(user) -> Version:
    """A draft whose notebook reads its data from a file of another, published record of this repository."""
    source = record_create(owner=user, metadata={"title": "Data"})
    upload(source, user, "measurements.csv", demo.measurements_csv())
    Version.objects.filter(pk=source.pk).update(state=Version.State.PUBLISHED)
    version = record_create(owner=user, metadata={"title": "Uses data"})
    upload(version, user, "thermal.ipynb", demo.notebook())
    return draft_update(version=version, actor=user, metadata={
        "title": "Uses data", "notebook_path": "thermal.ipynb",
        "data_references": [{"kind": "repository_file", "identifier": f"{source.record.public_id}/measurements.csv",
                             "target_path": demo.DATA_PATH}],
    })


@needs_sandbox
def test_a_data_reference_from_this_repository_is_staged_where_the_notebook_reads_it(user):
    version = draft_reading_published_data(user)
    run = run_request(version=version, requested_by=user)

    run = run_execute(run_pk=run.pk)

    assert run.verdict == "reproduced", run.message
    assert run.staged_references[0]["target_path"] == demo.DATA_PATH


@needs_sandbox
def test_a_checksum_mismatch_fails_the_run_naming_the_reference(user):
    version = draft_reading_published_data(user)
    # The stored checksum no longer matches the bytes (as if the reference had been recorded wrongly).
    version.data_references.update(sha256=hashlib.sha256(b"other bytes").hexdigest())
    run = run_request(version=version, requested_by=user)

    run = run_execute(run_pk=run.pk)

    assert run.verdict == "execution_failed"
    assert "data reference 1" in run.message and "sha256" in run.message


@needs_sandbox
def test_without_its_data_the_notebook_fails_to_run(user):
    version = record_create(owner=user, metadata={"title": "No data"})
    upload(version, user, "thermal.ipynb", demo.notebook())
    run = run_request(version=version, requested_by=user)

    run = run_execute(run_pk=run.pk)

    assert run.verdict == "execution_failed"
    assert "FileNotFoundError" in run.message


def test_a_missing_sandbox_puts_the_run_back_in_the_queue(user, settings):
    from repository.services.runs import InfrastructureError

    settings.RUNNER_KERNEL_PYTHON = "/nonexistent/kernel-env/bin/python"
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)

    with pytest.raises(InfrastructureError):
        run_execute(run_pk=run.pk)

    run.refresh_from_db()
    assert run.status == "queued" and run.verdict == ""
