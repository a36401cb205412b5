"""The public record API: content negotiation for citations and metadata, the version list, new versions,
metadata corrections, withdrawal, and discarding drafts."""

import json

import pytest
from lxml import etree
from rest_framework.test import APIClient

from repository.models import DoiOutbox, Version
from tests.factories import UserFactory, published_version, sync_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator(db):
    return UserFactory(username="moderator")


@pytest.fixture
def published(user, moderator):
    return published_version(user, moderator)


@pytest.fixture
def anonymous():
    return APIClient()


def test_the_latest_version_as_json_for_anyone(anonymous, published):
    response = anonymous.get(f"/api/records/{published.record.public_id}")

    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["doi"], body["concept_doi"]) == (1, published.doi, published.record.concept_doi)
    assert body["metadata"]["title"] == "Thermal expansion"
    assert {f["path"] for f in body["files"]} == {"thermal.ipynb", "data/measurements.csv"}
    assert all(f["checksum"].startswith("sha256:") for f in body["files"])


@pytest.mark.parametrize("media_type, check", [
    ("application/vnd.datacite.datacite+json", lambda text, v: json.loads(text)["doi"] == v.doi),
    ("application/vnd.datacite.datacite+xml",
     lambda text, v: etree.fromstring(text.encode()).findtext("{*}identifier") == v.doi),
    ("application/x-bibtex", lambda text, v: text.startswith("@software{") and f"{{{v.doi}}}" in text),
    ("application/x-research-info-systems", lambda text, v: "TY  - COMP" in text and f"DO  - {v.doi}" in text),
    ("application/vnd.citationstyles.csl+json", lambda text, v: json.loads(text)["DOI"] == v.doi),
    ("text/x-bibliography", lambda text, v: "Doe, J." in text and f"https://doi.org/{v.doi}" in text),
])
def test_content_negotiation_answers_every_citation_format(anonymous, published, media_type, check):
    response = anonymous.get(f"/api/records/{published.record.public_id}", HTTP_ACCEPT=media_type)

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith(media_type)
    assert check(response.content.decode(), published)


def test_format_query_parameter_and_citation_style(anonymous, published):
    record_id = published.record.public_id
    bibtex = anonymous.get(f"/api/records/{record_id}/versions/1?format=bibtex")
    assert bibtex.status_code == 200 and bibtex["Content-Type"].startswith("application/x-bibtex")

    ieee = anonymous.get(f"/api/records/{record_id}/versions/1", HTTP_ACCEPT="text/x-bibliography; style=ieee")
    apa = anonymous.get(f"/api/records/{record_id}/versions/1", HTTP_ACCEPT="text/x-bibliography")
    assert ieee.status_code == apa.status_code == 200
    assert ieee.content != apa.content


def test_an_unknown_style_or_format_is_a_clear_client_error(anonymous, published):
    record_id = published.record.public_id
    unknown_style = anonymous.get(f"/api/records/{record_id}?format=citation&style=../../etc/passwd")
    unacceptable = anonymous.get(f"/api/records/{record_id}", HTTP_ACCEPT="image/png")

    assert unknown_style.status_code == 400 and "style" in unknown_style.json()["detail"]
    assert unacceptable.status_code == 406


def test_unknown_records_and_drafts_are_404(anonymous, user):
    from tests.factories import demo_draft

    draft = demo_draft(user)
    assert anonymous.get("/api/records/zzzzz-zzzzz").status_code == 404
    assert anonymous.get(f"/api/records/{draft.record.public_id}").status_code == 404
    assert anonymous.get(f"/api/records/{draft.record.public_id}",
                         HTTP_ACCEPT="application/x-bibtex").status_code == 404


def test_new_version_through_the_api_for_owners_only(api, anonymous, published, other_user):
    record_id = published.record.public_id
    assert anonymous.post(f"/api/records/{record_id}/versions").status_code == 401
    outsider = APIClient()
    outsider.force_authenticate(other_user)
    assert outsider.post(f"/api/records/{record_id}/versions").status_code == 403

    response = api.post(f"/api/records/{record_id}/versions")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["version"], body["state"]) == (2, "draft")
    assert body["doi"] and body["doi"] != published.doi
    assert {f["path"] for f in body["files"]} == {"thermal.ipynb", "data/measurements.csv"}
    assert api.post(f"/api/records/{record_id}/versions").status_code == 409
    versions = anonymous.get(f"/api/records/{record_id}/versions").json()
    assert [v["version"] for v in versions] == [1]  # the draft is not public


def test_correcting_published_metadata_keeps_files_and_what_was_verified(api, published):
    url = f"/api/records/{published.record.public_id}/versions/1/metadata"
    metadata = api.get(f"/api/records/{published.record.public_id}").json()["metadata"]

    refused = api.put(url, {**metadata, "container_image": "registry.example.org/other@sha256:" + "b" * 64},
                      format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "container_image"

    corrected = api.put(url, {**metadata, "title": "Thermal expansion of copper", "reason": "typo"}, format="json")
    assert corrected.status_code == 200, corrected.content
    assert corrected.json()["metadata"]["title"] == "Thermal expansion of copper"
    assert DoiOutbox.objects.get(version=published).is_pending  # on its way to DataCite


def test_withdrawal_is_for_admins_with_a_reason_and_leaves_a_410(api, anonymous, published):
    url = f"/api/records/{published.record.public_id}/versions/1/actions/withdraw"
    assert api.post(url, {"reason": "mine"}, format="json").status_code == 403
    admin = APIClient()
    admin.force_authenticate(UserFactory(is_superuser=True, is_staff=True))
    assert admin.post(url, {"reason": ""}, format="json").status_code == 400

    assert admin.post(url, {"reason": "Data were fabricated."}, format="json").status_code == 200
    sync_pending()

    gone = anonymous.get(f"/api/records/{published.record.public_id}/versions/1")
    assert gone.status_code == 410
    assert gone.json()["withdrawal_reason"] == "Data were fabricated." and gone.json()["files"] == []
    assert anonymous.get(f"/api/records/{published.record.public_id}").status_code == 410  # only a tombstone left


def test_discarding_a_draft_through_the_api(api, user):
    created = api.post("/api/records", {"title": "Scratch"}, format="json").json()

    response = api.delete(f"/api/records/{created['id']}/draft")

    assert response.status_code == 204
    assert api.get(f"/api/records/{created['id']}/draft").status_code == 404
    assert DoiOutbox.objects.get(doi=created["doi"]).wanted_state == "deleted"
    assert not Version.objects.filter(doi=created["doi"]).exists()


def test_an_accepted_version_is_public_while_its_doi_is_being_registered(anonymous, user, moderator):
    from tests.factories import accept, demo_draft

    version = accept(demo_draft(user), moderator)  # DataCite has not confirmed yet

    response = anonymous.get(f"/api/records/{version.record.public_id}")

    assert response.status_code == 200  # the DOI, once registered, never points at a missing page
    assert (response.json()["state"], response.json()["doi"]) == ("publishing", version.doi)


def test_a_new_version_while_the_latest_is_still_publishing_is_a_409_that_says_why(api, user, moderator):
    from tests.factories import accept, demo_draft

    first = accept(demo_draft(user), moderator)  # accepted; its DOI not registered yet
    assert first.state == Version.State.PUBLISHING
    url = f"/api/records/{first.record.public_id}/versions"

    response = api.post(url)

    assert response.status_code == 409, response.content
    assert "DOI is being registered" in response.json()["detail"]
    sync_pending()
    assert api.post(url).status_code == 201  # once published, it may start


def test_a_new_version_while_a_second_version_is_publishing_does_not_start_from_the_first(api, user, published,
                                                                                         moderator):
    from tests.factories import accept

    record_id = published.record.public_id
    second = Version.objects.get(record=published.record, number=api.post(
        f"/api/records/{record_id}/versions").json()["version"])
    accept(second, moderator)

    response = api.post(f"/api/records/{record_id}/versions")

    assert response.status_code == 409
    assert "Version 2 was accepted and its DOI is being registered" in response.json()["detail"]
