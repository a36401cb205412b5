"""A data reference to a closed file of another record of this repository: a run stages it only when an owner of
the referencing version may read it (an owner of that record too, or someone granted access); otherwise the run
fails at staging with a message naming the reference and saying why."""

import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from repository import demo
from repository.access.models import AccessGrant
from repository.models import ExecutionRun, FileAccess, Version
from repository.services.drafts import draft_update, record_create
from repository.services.run_data import run_data_url
from repository.services.runs import reference_spec, run_execute, run_request
from tests.factories import UserFactory, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_queue")]


@pytest.fixture(autouse=True)
def staging_cache(settings, tmp_path):
    settings.STAGING_CACHE_DIR = str(tmp_path / "cache")


def published_data(owner) -> Version:
    source = record_create(owner=owner, metadata={"title": "Licensed data"})
    upload(source, owner, "measurements.csv", demo.measurements_csv())
    Version.objects.filter(pk=source.pk).update(state=Version.State.PUBLISHED, published_at=timezone.now())
    return Version.objects.get(pk=source.pk)


def draft_reading(source: Version, owner) -> Version:
    version = record_create(owner=owner, metadata={"title": "Uses licensed data"})
    upload(version, owner, "thermal.ipynb", demo.notebook())
    return draft_update(version=version, actor=owner, metadata={
        "title": "Uses licensed data", "notebook_path": "thermal.ipynb",
        "data_references": [{"kind": "repository_file", "identifier": f"{source.record.public_id}/measurements.csv",
                             "target_path": demo.DATA_PATH}],
    })


def close(source: Version, access: str, until: datetime.date | None = None) -> None:
    Version.objects.filter(pk=source.pk).update(access_files=access, embargo_until=until)


def refusal(draft: Version) -> str | None:
    return reference_spec(1, draft.data_references.get()).refused


def test_a_run_fails_on_a_restricted_file_its_owners_may_not_read(user):
    source = published_data(UserFactory())
    draft = draft_reading(source, user)
    close(source, FileAccess.RESTRICTED)

    run = run_execute(run_pk=run_request(version=draft, requested_by=user).pk)

    record_id = source.record.public_id
    assert run.status == ExecutionRun.Status.FINISHED and run.verdict == "execution_failed"
    assert run.message == (
        f"data reference 1 ({record_id}/v1/measurements.csv): the files of version 1 of record {record_id} are "
        "restricted, and no owner of this record may read them; ask that record's owners for access, or reference "
        "an open copy of the data.")
    assert run.staged_references == [] and run.executed_notebook_id is None


def test_an_embargo_refuses_even_a_grantee_until_its_day(user):
    source = published_data(UserFactory())
    draft = draft_reading(source, user)
    until = timezone.now().date() + datetime.timedelta(days=10)
    close(source, FileAccess.EMBARGOED, until)
    AccessGrant.objects.create(record=source.record, user=user)

    assert f"are embargoed until {until:%Y-%m-%d}, and no owner" in refusal(draft)

    close(source, FileAccess.EMBARGOED, timezone.now().date())  # the day has come
    assert refusal(draft) is None


def test_a_grant_to_one_owner_or_owning_both_records_lets_the_file_be_staged(user, other_user):
    stranger = UserFactory()
    source = published_data(stranger)
    draft = draft_reading(source, user)
    draft.record.owners.add(other_user)
    close(source, FileAccess.RESTRICTED)
    assert refusal(draft) is not None

    grant = AccessGrant.objects.create(record=source.record, user=other_user)  # a co-owner was let in
    assert refusal(draft) is None

    grant.delete()
    source.record.owners.add(user)  # the same people own the data
    assert refusal(draft) is None


def test_open_files_are_staged_for_anyone(user):
    source = published_data(UserFactory())
    assert refusal(draft_reading(source, user)) is None


def test_a_signed_input_url_serves_a_closed_reference_only_while_an_owner_may_read_it(client, user, gitlab_runner):
    """The GitLab runner's jobs fetch their inputs by signed URL after staging checked them; a grant revoked (or
    a file closed) meanwhile stops the download too."""
    source = published_data(UserFactory())
    draft = draft_reading(source, user)
    grant = AccessGrant.objects.create(record=source.record, user=user)
    close(source, FileAccess.RESTRICTED)
    run = run_request(version=draft, requested_by=user)
    ExecutionRun.objects.filter(pk=run.pk).update(status="running", runner="gitlab")
    parts = urlsplit(run_data_url(run=run, target_path=demo.DATA_PATH))
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}

    served = client.get(parts.path, query)
    AccessGrant.objects.filter(pk=grant.pk).update(revoked_at=timezone.now())
    refused = client.get(parts.path, query)

    assert served.status_code == 200 and b"".join(served.streaming_content) == demo.measurements_csv()
    assert refused.status_code == 403 and not getattr(refused, "streaming", False)
