"""draft_update and record_create: the rules every caller (API, web, commands) gets."""

import io

import pytest

from repository.errors import Conflict, InvalidInput
from repository.models import AuditEvent, Creator, DataReference, Version
from repository.services.drafts import draft_update, record_create
from repository.services.files import draft_file_upload

pytestmark = pytest.mark.django_db


def published_version_with_file(owner, path="data/table.csv", data=b"a,b\n1,2\n"):
    version = record_create(owner=owner, metadata={"title": "Published data"})
    draft_file_upload(version=version, actor=owner, path=path, stream=io.BytesIO(data), content_length=len(data))
    Version.objects.filter(pk=version.pk).update(state=Version.State.PUBLISHED)
    return version


def test_record_create_makes_version_one_owned_by_the_creator(user):
    version = record_create(owner=user, metadata={"title": "First"})

    assert version.number == 1 and version.state == "draft" and version.title == "First"
    assert list(version.record.owners.all()) == [user]
    assert AuditEvent.objects.filter(version=version, action="draft.update").exists()


def test_a_published_version_cannot_be_edited(user):
    version = record_create(owner=user)
    Version.objects.filter(pk=version.pk).update(state=Version.State.PUBLISHED)

    with pytest.raises(Conflict):
        draft_update(version=version, actor=user, metadata={"title": "Changed"})
    assert Version.objects.get(pk=version.pk).title == ""


def test_all_errors_are_reported_at_once_and_nothing_is_written(user):
    version = record_create(owner=user, metadata={"title": "Kept", "creators": [{"name": "Kept, K"}]})

    with pytest.raises(InvalidInput) as raised:
        draft_update(version=version, actor=user, metadata={
            "title": "New", "license": "nope", "container_image": "python:3",
            "creators": [{"name": "A", "orcid": "1234"}, "not an object", {"name": "B", "shoe_size": 44}],
            "keywords": "not a list",
        })

    fields = set(raised.value.field_errors)
    assert {"license", "container_image", "creators[0].orcid", "creators[1]", "creators[2]", "keywords"} <= fields
    version.refresh_from_db()
    assert version.title == "Kept"
    assert list(Creator.objects.filter(version=version).values_list("name", flat=True)) == ["Kept, K"]


def test_a_reference_to_a_file_of_a_published_version_takes_its_checksum(user):
    source = published_version_with_file(user)
    blob = source.files.get().blob
    draft = record_create(owner=user)

    draft_update(version=draft, actor=user, metadata={"data_references": [
        {"kind": "repository_file", "identifier": f"{source.record.public_id}/data/table.csv", "target_path": "in.csv"}
    ]})

    reference = DataReference.objects.get(version=draft)
    assert reference.identifier == f"{source.record.public_id}/v1/data/table.csv"
    assert (reference.sha256, reference.size) == (blob.sha256, blob.size)


def test_a_reference_to_a_missing_file_or_a_wrong_checksum_is_refused(user):
    source = published_version_with_file(user)
    draft = record_create(owner=user)
    record_id = source.record.public_id

    with pytest.raises(InvalidInput) as raised:
        draft_update(version=draft, actor=user, metadata={"data_references": [
            {"kind": "repository_file", "identifier": f"{record_id}/nope.csv", "target_path": "a"},
            {"kind": "repository_file", "identifier": f"{record_id}/v2/data/table.csv", "target_path": "b"},
            {"kind": "repository_file", "identifier": f"{record_id}/data/table.csv", "target_path": "c",
             "sha256": "0" * 64, "size": 1},
        ]})

    errors = raised.value.field_errors
    assert "no file 'nope.csv'" in errors["data_references[0].identifier"][0]
    assert "no published version 2" in errors["data_references[1].identifier"][0]
    assert "data_references[2].sha256" in errors


def test_a_draft_is_not_a_source_for_repository_file_references(user):
    draft_source = record_create(owner=user)
    data = b"draft bytes"
    draft_file_upload(version=draft_source, actor=user, path="x.csv", stream=io.BytesIO(data), content_length=len(data))
    draft = record_create(owner=user)

    with pytest.raises(InvalidInput):
        draft_update(version=draft, actor=user, metadata={"data_references": [
            {"kind": "repository_file", "identifier": f"{draft_source.record.public_id}/x.csv", "target_path": "a"}
        ]})


def test_a_reference_may_not_shadow_an_uploaded_file(user):
    version = record_create(owner=user)
    draft_file_upload(version=version, actor=user, path="data.csv", stream=io.BytesIO(b"1"), content_length=1)

    with pytest.raises(InvalidInput) as raised:
        draft_update(version=version, actor=user, metadata={"data_references": [
            {"kind": "doi", "identifier": "10.5281/zenodo.1", "target_path": "data.csv", "sha256": "a" * 64, "size": 1}
        ]})
    assert "data_references[0].target_path" in raised.value.field_errors


LOOPBACK_SPELLINGS = ["https://[::1]/a.csv", "https://[0:0:0:0:0:0:0:1]/a.csv", "https://[::ffff:127.0.0.1]/a.csv",
                      "https://[::ffff:7f00:1]/a.csv", "https://[64:ff9b::7f00:1]/a.csv",
                      "https://[2002:7f00:1::]/a.csv", "https://[::127.0.0.1]/a.csv", "https://localhost/a.csv",
                      "https://[::]/a.csv", "https://[fe80::1]/a.csv"]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
@pytest.mark.parametrize("kind", ["url", "archive_query"])
def test_an_address_staging_refuses_is_refused_when_saved_in_stagings_words(user, url, kind):
    from urllib.parse import urlsplit

    from repository.runners.staging.addresses import checked_addresses
    from repository.runners.staging.errors import StagingError

    draft = record_create(owner=user)
    reference = {"kind": kind, "identifier": url, "target_path": "a.csv", "sha256": "0" * 64, "size": 1}
    if kind == "archive_query":
        reference["query"] = {"q": "x"}

    with pytest.raises(InvalidInput) as raised:
        draft_update(version=draft, actor=user, metadata={"data_references": [reference]})

    [message] = raised.value.field_errors["data_references[0].identifier"]
    host = urlsplit(url).hostname
    if host != "localhost":  # a name: staging resolves it; the saved check knows it is this machine
        with pytest.raises(StagingError) as at_staging:
            checked_addresses(host, 443, (), "a.csv", "")
        assert message == at_staging.value.message
    assert "data is only fetched from public internet addresses" in message
    assert not DataReference.objects.filter(version=draft).exists()


def test_a_public_address_is_still_accepted_when_saved(user):
    draft = record_create(owner=user)

    draft_update(version=draft, actor=user, metadata={"data_references": [
        {"kind": "url", "identifier": "https://[2001:4860:4860::8888]/a.csv", "target_path": "a.csv",
         "sha256": "0" * 64, "size": 1}]})

    assert DataReference.objects.filter(version=draft).count() == 1


def test_a_description_longer_than_every_export_should_carry_is_refused(user):
    from repository.services.drafts import MAX_DESCRIPTION_CHARS

    draft = record_create(owner=user, metadata={"title": "Kept"})

    with pytest.raises(InvalidInput) as raised:
        draft_update(version=draft, actor=user, metadata={"title": "Kept", "description": "word " * 480_000})

    assert f"At most {MAX_DESCRIPTION_CHARS:,} characters" in raised.value.field_errors["description"][0]
    assert Version.objects.get(pk=draft.pk).description == ""
    draft_update(version=draft, actor=user, metadata={"title": "Kept", "description": "x" * MAX_DESCRIPTION_CHARS})


def test_funding_is_bounded_like_the_other_lists(user):
    from repository.services.drafts import MAX_LIST_ITEMS

    draft = record_create(owner=user)

    with pytest.raises(InvalidInput) as too_many:
        draft_update(version=draft, actor=user, metadata={"funding": [{"funder_name": f"F{i}"}
                                                                     for i in range(MAX_LIST_ITEMS + 1)]})
    with pytest.raises(InvalidInput) as too_long:
        draft_update(version=draft, actor=user, metadata={"funding": [{"funder_name": "F", "award_title": "T" * 5000}]})

    assert too_many.value.field_errors["funding"] == [f"At most {MAX_LIST_ITEMS} entries."]
    assert too_long.value.field_errors["funding[0].award_title"] == ["At most 1000 characters."]
