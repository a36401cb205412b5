"""What a client reads it may send back; what the API does not know it refuses by name, never drops silently."""

import pytest

from repository.models import Version
from tests.factories import UserFactory, published_version
from tests.repository.api.test_drafts_api import errors_by_field, full_metadata

pytestmark = pytest.mark.django_db


def test_a_draft_read_with_get_and_sent_back_with_put_changes_what_was_edited(api):
    record_id = api.post("/api/records", full_metadata(), format="json").json()["id"]
    url = f"/api/records/{record_id}/draft"
    read = api.get(url).json()

    read["metadata"]["title"] = "Edited after a GET"
    read["metadata"]["keywords"].append("round trip")
    read["state"] = "published"  # read-only fields are ignored, whatever they say
    response = api.put(url, read, format="json")

    assert response.status_code == 200, response.content
    again = api.get(url).json()
    assert again["metadata"]["title"] == "Edited after a GET"
    assert "round trip" in again["metadata"]["keywords"]
    assert again["state"] == "draft"
    assert again["metadata"]["creators"] == read["metadata"]["creators"]
    assert again["metadata"]["data_references"] == read["metadata"]["data_references"]


def test_a_create_wrapped_in_metadata_keeps_the_metadata(api):
    response = api.post("/api/records", {"metadata": {"title": "Wrapped", "keywords": ["a"]}}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["metadata"]["title"] == "Wrapped"
    assert response.json()["metadata"]["keywords"] == ["a"]


@pytest.mark.parametrize("body, field", [
    ({"title": "T", "titel": "typo"}, "titel"),
    ({"title": "T", "creators": [{"name": "Curie, Marie", "orcid_id": "0000-0002-1825-0097"}]}, "creators[0].orcid_id"),
    ({"data_references": [{"kind": "url", "identifier": "https://data.example.org/x", "target_path": "x",
                           "sha256": "b" * 64, "size": 1, "checksum": "x"}]}, "data_references[0].checksum"),
    ({"related_identifiers": [{"identifier": "10.1/x", "scheme": "DOI", "relation": "Cites", "x": 1}]},
     "related_identifiers[0].x"),
    ({"funding": [{"funder_name": "SNSF", "grant": "1"}]}, "funding[0].grant"),
    ({"metadata": {"title": "T"}, "title": "T"}, "title"),  # both wrapped and flat
    ({"metadata": {"title": "T"}, "extra": 1}, "extra"),  # not one of GET's fields
    ({"metadata": "not an object"}, "metadata"),
])
def test_unknown_fields_are_a_400_that_names_them_and_nothing_is_created(api, user, body, field):
    response = api.post("/api/records", body, format="json")

    assert response.status_code == 400, response.content
    assert field in errors_by_field(response)
    assert not Version.objects.filter(record__owners=user).exists()


def test_an_unknown_field_on_put_leaves_the_draft_as_it_was(api):
    record_id = api.post("/api/records", {"title": "Kept"}, format="json").json()["id"]

    response = api.put(f"/api/records/{record_id}/draft", {"title": "Changed", "licence": "MIT"}, format="json")

    assert response.status_code == 400
    assert "licence" in errors_by_field(response)
    assert api.get(f"/api/records/{record_id}/draft").json()["metadata"]["title"] == "Kept"


def test_a_published_version_read_with_get_can_be_corrected_with_put(api, user):
    published = published_version(user, UserFactory())
    record_id = published.record.public_id
    read = api.get(f"/api/records/{record_id}/versions/1").json()

    read["metadata"]["title"] = "Corrected by round trip"
    read["reason"] = "typo"
    response = api.put(f"/api/records/{record_id}/versions/1/metadata", read, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["metadata"]["title"] == "Corrected by round trip"
    assert api.put(f"/api/records/{record_id}/versions/1/metadata", {**read, "colour": "red"},
                   format="json").status_code == 400


def test_other_inputs_refuse_unknown_fields_too(api, user):
    record_id = api.post("/api/records", {"title": "T"}, format="json").json()["id"]

    response = api.post(f"/api/records/{record_id}/draft/actions/submit", {"comunity": "general"}, format="json")

    assert response.status_code == 400
    assert "comunity" in errors_by_field(response)


def test_a_correction_cannot_empty_what_the_citation_needs(api, user):
    published = published_version(user, UserFactory())
    url = f"/api/records/{published.record.public_id}/versions/1/metadata"

    response = api.put(url, {"reason": "oops"}, format="json")

    assert response.status_code == 400, response.content
    assert {"title", "description", "creators", "license"} <= set(errors_by_field(response))
    published.refresh_from_db()
    assert published.title == "Thermal expansion" and published.creators.exists()
