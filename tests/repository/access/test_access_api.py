"""A version's `access` in the API: set on drafts (POST, PUT, flat or as GET answers it), refused field by field
when it makes no sense, shown the same way on published versions, only opened by corrections, and described
precisely in the OpenAPI schema."""

import datetime

import pytest
from rest_framework.test import APIClient

from repository.access.policy import today
from repository.models import AuditEvent, FileAccess, Version
from repository.services.file_access import MAX_EMBARGO_YEARS
from tests.factories import UserFactory, published_version
from tests.repository.api.test_drafts_api import errors_by_field, full_metadata

pytestmark = pytest.mark.django_db


def in_days(days: int) -> str:
    return (today() + datetime.timedelta(days=days)).isoformat()


def embargo(days: int = 30, reason: str = "Until the paper appears") -> dict:
    return {"files": "embargoed", "embargo_until": in_days(days), "embargo_reason": reason}


OPEN = {"files": "open", "embargo_until": None, "embargo_reason": ""}


def test_a_draft_is_open_unless_told_otherwise(api):
    body = api.post("/api/records", full_metadata(), format="json").json()
    assert body["access"] == OPEN
    assert "access" not in body["metadata"]  # beside the metadata, as InvenioRDM has it


def test_an_embargo_set_on_create_is_what_get_shows(api):
    created = api.post("/api/records", full_metadata(access=embargo(30)), format="json")

    assert created.status_code == 201, created.content
    read = api.get(f"/api/records/{created.json()['id']}/draft").json()
    assert read["access"] == embargo(30)
    version = Version.objects.get(record__public_id=created.json()["id"])
    assert (version.access_files, version.embargo_until) == (FileAccess.EMBARGOED, today() + datetime.timedelta(30))


@pytest.mark.parametrize("access, field, words", [
    ({"files": "embargoed"}, "access.embargo_until", "needs the day"),
    ({"files": "embargoed", "embargo_until": None}, "access.embargo_until", "needs the day"),
    ({"files": "embargoed", "embargo_until": in_days(0)}, "access.embargo_until", "after today"),
    ({"files": "embargoed", "embargo_until": in_days(-3)}, "access.embargo_until", "after today"),
    ({"files": "embargoed", "embargo_until": in_days(366 * MAX_EMBARGO_YEARS + 1)}, "access.embargo_until",
     f"at most {MAX_EMBARGO_YEARS} years"),
    ({"files": "embargoed", "embargo_until": "1st of May"}, "access.embargo_until", "YYYY-MM-DD"),
    ({"files": "embargoed", "embargo_until": "2027-02-30"}, "access.embargo_until", "YYYY-MM-DD"),
    ({"files": "open", "embargo_until": in_days(30)}, "access.embargo_until", "Only an embargo"),
    ({"files": "restricted", "embargo_until": in_days(30)}, "access.embargo_until", "Only an embargo"),
    ({"files": "open", "embargo_reason": "why not"}, "access.embargo_reason", "no reason"),
    ({"files": "secret"}, "access.files", "valid choice"),
    ({"embargo_until": in_days(30)}, "access.files", "required"),
    ({"files": "open", "until": in_days(3)}, "access.until", "Unknown field"),
    ("open", "access", "dictionary"),
])
def test_access_that_makes_no_sense_is_refused_on_its_field(api, access, field, words):
    response = api.post("/api/records", full_metadata(access=access), format="json")

    assert response.status_code == 400
    errors = errors_by_field(response)
    assert field in errors, errors
    assert words in " ".join(errors[field]), errors[field]
    assert not Version.objects.exists()  # nothing was saved


def test_the_longest_embargo_is_accepted():
    from repository.services.file_access import latest_embargo_day

    assert latest_embargo_day(datetime.date(2028, 2, 29)) == datetime.date(2038, 2, 28)


def test_put_takes_back_what_get_answered_with_the_access_changed(api):
    record_id = api.post("/api/records", full_metadata(), format="json").json()["id"]
    url = f"/api/records/{record_id}/draft"
    read = api.get(url).json()

    assert api.put(url, read, format="json").status_code == 200  # unchanged, as read
    read["access"] = {**read["access"], "files": "restricted", "embargo_reason": "Personal data"}
    response = api.put(url, read, format="json")

    assert response.status_code == 200, response.content
    assert api.get(url).json()["access"] == {"files": "restricted", "embargo_until": None,
                                             "embargo_reason": "Personal data"}


def test_a_put_that_leaves_access_out_keeps_it(api):
    """A client that does not know the field must not open files by omission."""
    record_id = api.post("/api/records", full_metadata(access=embargo(10)), format="json").json()["id"]
    url = f"/api/records/{record_id}/draft"

    assert api.put(url, full_metadata(title="Retitled"), format="json").status_code == 200
    read = api.get(url).json()
    assert read["metadata"]["title"] == "Retitled" and read["access"] == embargo(10)
    read["metadata"]["access"] = OPEN  # also taken from inside `metadata`
    read.pop("access")
    assert api.put(url, read, format="json").status_code == 200
    assert api.get(url).json()["access"] == OPEN


def test_access_sent_twice_is_refused(api):
    record_id = api.post("/api/records", full_metadata(), format="json").json()["id"]
    read = api.get(f"/api/records/{record_id}/draft").json()
    read["metadata"]["access"] = read["access"]

    response = api.put(f"/api/records/{record_id}/draft", read, format="json")
    assert response.status_code == 400 and "access" in errors_by_field(response)


@pytest.fixture
def moderator(db):
    return UserFactory(username="moderator")


def _published_with(owner, moderator, access: dict) -> Version:
    return published_version(owner, moderator, access=access)


def test_published_versions_show_their_access_to_anyone(user, moderator):
    version = _published_with(user, moderator, embargo(20, "Patent pending"))

    body = APIClient().get(f"/api/records/{version.record.public_id}").json()
    assert body["access"] == embargo(20, "Patent pending")
    assert "access" not in body["metadata"]


@pytest.mark.parametrize("before, after", [
    ({"files": "restricted", "embargo_reason": "Personal data"}, embargo(40)),
    ({"files": "restricted"}, OPEN),
    (embargo(40), OPEN),
    (embargo(40), embargo(10, "Paper out sooner")),
])
def test_a_correction_may_open_files(api, user, moderator, before, after):
    version = _published_with(user, moderator, before)
    url = f"/api/records/{version.record.public_id}/versions/1/metadata"
    read = api.get(f"/api/records/{version.record.public_id}").json()
    changed_at = Version.objects.get(pk=version.pk).public_changed_at

    response = api.put(url, {**read, "access": after, "reason": "Paper published"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["access"] == after
    version.refresh_from_db()
    assert version.public_changed_at > changed_at  # harvesters fetch it again
    event = AuditEvent.objects.get(version=version, action="version.correct")
    assert event.data["after"]["access"] == after and "access" in event.data["fields"]


@pytest.mark.parametrize("before, after, field", [
    (OPEN, {"files": "restricted"}, "access.files"),
    (OPEN, embargo(40), "access.files"),
    (embargo(40), {"files": "restricted"}, "access.files"),
    (embargo(10), embargo(40), "access.embargo_until"),
])
def test_a_correction_cannot_close_files_or_prolong_an_embargo(api, user, moderator, before, after, field):
    version = _published_with(user, moderator, before)
    url = f"/api/records/{version.record.public_id}/versions/1/metadata"
    read = api.get(f"/api/records/{version.record.public_id}").json()

    response = api.put(url, {**read, "access": after}, format="json")

    assert response.status_code == 400
    assert field in errors_by_field(response)
    version.refresh_from_db()
    assert version.access_files == before["files"]
    assert not AuditEvent.objects.filter(version=version, action="version.correct").exists()


def test_a_correction_without_access_keeps_it(api, user, moderator):
    version = _published_with(user, moderator, {"files": "restricted"})
    url = f"/api/records/{version.record.public_id}/versions/1/metadata"
    metadata = api.get(f"/api/records/{version.record.public_id}").json()["metadata"]

    response = api.put(url, {**metadata, "title": "Typo fixed"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["access"]["files"] == "restricted"


def test_a_new_version_starts_with_the_access_of_the_latest(api, user, moderator):
    version = _published_with(user, moderator, embargo(40))

    draft = api.post(f"/api/records/{version.record.public_id}/versions").json()
    assert draft["access"] == embargo(40)


def test_a_new_version_does_not_carry_an_embargo_that_has_ended(api, user, moderator):
    version = _published_with(user, moderator, embargo(40))
    Version.objects.filter(pk=version.pk).update(embargo_until=today())  # its day came; the job has not run

    draft = api.post(f"/api/records/{version.record.public_id}/versions").json()
    assert draft["access"] == OPEN


def test_the_schema_describes_access_precisely(client):
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]["schemas"]

    access_input = schemas["AccessInput"]
    assert schemas["FileAccessEnum"]["enum"] == ["open", "embargoed", "restricted"]
    assert access_input["properties"]["files"] == {"$ref": "#/components/schemas/FileAccessEnum"}
    assert access_input["required"] == ["files"] and access_input["additionalProperties"] is False
    until = access_input["properties"]["embargo_until"]
    assert (until["type"], until["format"], until["nullable"]) == ("string", "date", True)
    assert f"{MAX_EMBARGO_YEARS} years" in until["description"]
    assert schemas["DraftMetadataInput"]["properties"]["access"]["allOf"] == [
        {"$ref": "#/components/schemas/AccessInput"}]
    assert "kept" in schemas["DraftMetadataInput"]["properties"]["access"]["description"]
    for output in ("DraftOutput", "PublicVersionOutput"):
        assert schemas[output]["properties"]["access"]["allOf"] == [{"$ref": "#/components/schemas/AccessOutput"}]
        assert "access" in schemas[output]["required"]
    assert schemas["AccessOutput"]["properties"]["embargo_until"]["format"] == "date"
