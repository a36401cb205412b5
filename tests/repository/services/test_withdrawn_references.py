"""A data reference to a file of this repository whose version has since been withdrawn: refused when the draft is
saved, when it is submitted, and when a run stages its inputs, each time with a message naming the reference."""

import pytest
from django.utils import timezone

from repository.errors import InvalidInput
from repository.models import ExecutionRun, Version
from repository.services.drafts import draft_update, record_create
from repository.services.runs import run_execute, run_request
from repository.services.submission import version_submit
from tests.factories import IMAGE, upload
from tests.repository.services.test_runs import draft_reading_published_data

pytestmark = pytest.mark.django_db


def withdraw(version: Version) -> Version:
    Version.objects.filter(pk=version.pk).update(state=Version.State.WITHDRAWN, withdrawn_at=timezone.now(),
                                                  withdrawal_reason="The data were wrong.")
    return Version.objects.get(pk=version.pk)


def source_of(draft: Version) -> Version:
    record_id = draft.data_references.get().identifier.split("/")[0]
    return Version.objects.get(record__public_id=record_id, number=1)


def test_a_run_refuses_a_reference_whose_version_was_withdrawn(user, settings, tmp_path):
    settings.STAGING_CACHE_DIR = str(tmp_path / "cache")
    draft = draft_reading_published_data(user)
    source = withdraw(source_of(draft))
    run = run_request(version=draft, requested_by=user)

    run = run_execute(run_pk=run.pk)

    record_id = source.record.public_id
    assert run.status == ExecutionRun.Status.FINISHED and run.verdict == "execution_failed"
    assert run.message == (
        f"data reference 1 ({record_id}/v1/measurements.csv): version 1 of record {record_id} was withdrawn on "
        f"{source.withdrawn_at:%Y-%m-%d}, so its files can no longer be used; reference another version or another "
        "copy of the data.")


def test_submitting_a_draft_whose_reference_was_withdrawn_since_is_refused_on_the_field(user):
    draft = draft_reading_published_data(user)
    draft_update(version=draft, actor=user, metadata={
        "title": "Uses data", "description": "d", "license": "CC-BY-4.0", "creators": [{"name": "Doe, Jane"}],
        "container_image": IMAGE, "notebook_path": "thermal.ipynb",
        "data_references": [{"kind": "repository_file", "identifier": draft.data_references.get().identifier,
                             "target_path": "data/measurements.csv"}],
    })
    source = withdraw(source_of(draft))

    with pytest.raises(InvalidInput) as raised:
        version_submit(version=draft, actor=user)

    assert raised.value.field_errors == {"data_references[0].identifier": [
        f"Version 1 of record {source.record.public_id} was withdrawn; its files can no longer be referenced. "
        "Reference another version or another copy of the data."]}
    assert Version.objects.get(pk=draft.pk).state == Version.State.DRAFT
    assert not ExecutionRun.objects.filter(version=draft).exists()


def test_saving_a_reference_to_a_withdrawn_version_says_it_was_withdrawn(user):
    source = record_create(owner=user, metadata={"title": "Data"})
    upload(source, user, "table.csv", b"a\n1\n")
    source = withdraw(source)
    draft = record_create(owner=user)
    record_id = source.record.public_id

    with pytest.raises(InvalidInput) as raised:
        draft_update(version=draft, actor=user, metadata={"data_references": [
            {"kind": "repository_file", "identifier": f"{record_id}/v1/table.csv", "target_path": "a.csv"},
            {"kind": "repository_file", "identifier": f"{record_id}/table.csv", "target_path": "b.csv"},
        ]})

    errors = raised.value.field_errors
    assert errors["data_references[0].identifier"] == [
        f"Version 1 of record {record_id} was withdrawn; its files can no longer be referenced. Reference another "
        "version or another copy of the data."]
    assert errors["data_references[1].identifier"] == [
        f"The versions of record {record_id} were withdrawn; their files can no longer be referenced. Reference "
        "another version or another copy of the data."]
