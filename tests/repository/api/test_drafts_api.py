"""The draft endpoints as an API client sees them: status codes, problem+json bodies, permissions."""

import pytest
from rest_framework.test import APIClient

from repository.models import AuditEvent, Version

pytestmark = pytest.mark.django_db

IMAGE = "registry.example.org/group/nb-image@sha256:" + "a" * 64
SHA = "b" * 64


def full_metadata(**overrides) -> dict:
    metadata = {
        "title": "Band gaps of 2D perovskites",
        "description": "Reproduces Fig. 3 of the paper.",
        "resource_type": "ComputationalNotebook",
        "license": "cc-by-4.0",
        "keywords": ["perovskites", "DFT", "dft"],
        "creators": [
            {"name": "Curie, Marie", "given_name": "Marie", "family_name": "Curie",
             "orcid": "https://orcid.org/0000-0002-1825-0097", "affiliation": "ETH Zurich",
             "affiliation_ror": "https://ror.org/05a28rw58"}
        ],
        "related_identifiers": [{"identifier": "https://doi.org/10.1038/s41586-020-2649-2", "scheme": "DOI",
                                 "relation": "IsSupplementTo"}],
        "funding": [{"funder_name": "Swiss National Science Foundation", "award_number": "200021"}],
        "container_image": IMAGE,
        "data_references": [
            {"kind": "url", "identifier": "https://data.example.org/gaps.csv", "target_path": "data/gaps.csv",
             "sha256": SHA, "size": 1024},
            {"kind": "doi", "identifier": "10.5281/zenodo.123", "target_path": "data/structures.zip",
             "sha256": SHA, "size": 2048},
            {"kind": "archive_query", "identifier": "https://nomad-lab.eu/prod/v1/api/v1/entries/archive/query",
             "query": {"results.material.elements": ["Ti", "O"]}, "target_path": "data/query.json",
             "sha256": SHA, "size": 10},
        ],
    }
    metadata.update(overrides)
    return metadata


def errors_by_field(response) -> dict:
    assert response["Content-Type"] == "application/problem+json", response.content
    return {error["field"]: error["messages"] for error in response.json().get("errors", [])}


def test_create_draft_with_full_metadata_normalises_identifiers(api, user):
    response = api.post("/api/records", full_metadata(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["state"] == "draft" and body["version"] == 1
    metadata = body["metadata"]
    assert metadata["license"] == "CC-BY-4.0"
    assert metadata["keywords"] == ["perovskites", "DFT"]
    assert metadata["creators"][0]["orcid"] == "0000-0002-1825-0097"
    assert metadata["creators"][0]["affiliation_ror"] == "05a28rw58"
    assert metadata["related_identifiers"][0]["identifier"] == "10.1038/s41586-020-2649-2"
    assert [ref["kind"] for ref in metadata["data_references"]] == ["url", "doi", "archive_query"]
    assert body["missing_for_submission"] == ["a notebook (.ipynb) file"]
    assert Version.objects.get(record__public_id=body["id"]).record.owners.filter(pk=user.pk).exists()
    assert AuditEvent.objects.filter(record__public_id=body["id"], action="record.create").exists()


def test_create_empty_draft_then_get_it(api):
    created = api.post("/api/records", {}, format="json")
    assert created.status_code == 201
    record_id = created.json()["id"]

    shown = api.get(f"/api/records/{record_id}/draft")

    assert shown.status_code == 200
    assert "a title" in shown.json()["missing_for_submission"]


@pytest.mark.parametrize(
    "overrides, field, words",
    [
        ({"container_image": "python:3.11"}, "container_image", "digest"),
        ({"container_image": "registry.example.org/x@sha256:abc"}, "container_image", "64"),
        ({"license": "Cool-License-9"}, "license", "SPDX"),
        ({"creators": [{"name": "X", "orcid": "0000-0002-1825-0098"}]}, "creators[0].orcid", "check digit"),
        ({"creators": [{"name": "X", "affiliation": "Y", "affiliation_ror": "ror.org/02mhbdp95"}]},
         "creators[0].affiliation_ror", "ROR"),
        ({"creators": [{"orcid": "0000-0002-1825-0097"}]}, "creators[0].name", "required"),
        ({"related_identifiers": [{"identifier": "not a doi", "scheme": "DOI", "relation": "IsSupplementTo"}]},
         "related_identifiers[0].identifier", "DOI"),
        ({"related_identifiers": [{"identifier": "10.1/x", "scheme": "DOI", "relation": "LikedBy"}]},
         "related_identifiers[0].relation", "valid choice"),
        ({"data_references": [{"kind": "url", "identifier": "http://data.example.org/a", "target_path": "a",
                               "sha256": SHA, "size": 1}]}, "data_references[0].identifier", "https"),
        ({"data_references": [{"kind": "url", "identifier": "https://127.0.0.1/a", "target_path": "a",
                               "sha256": SHA, "size": 1}]}, "data_references[0].identifier", "loopback"),
        ({"data_references": [{"kind": "url", "identifier": "https://10.1.2.3/a", "target_path": "a",
                               "sha256": SHA, "size": 1}]}, "data_references[0].identifier", "private"),
        ({"data_references": [{"kind": "url", "identifier": "https://x.org/a", "target_path": "../etc/passwd",
                               "sha256": SHA, "size": 1}]}, "data_references[0].target_path", "'..'"),
        ({"data_references": [{"kind": "url", "identifier": "https://x.org/a", "target_path": "a",
                               "sha256": "XYZ", "size": 1}]}, "data_references[0].sha256", "64"),
        ({"data_references": [{"kind": "url", "identifier": "https://x.org/a", "target_path": "a"}]},
         "data_references[0].sha256", "Required"),
        ({"data_references": [{"kind": "archive_query", "identifier": "https://x.org/api", "target_path": "a",
                               "sha256": SHA, "size": 1}]}, "data_references[0].query", "query"),
        ({"data_references": [{"kind": "repository_file", "identifier": "abcde-fghjk/data.csv",
                               "target_path": "a"}]}, "data_references[0].identifier", "no published version"),
        ({"resource_type": "Movie"}, "resource_type", "valid choice"),
        ({"notebook_path": "missing.ipynb"}, "notebook_path", "No file"),
    ],
)
def test_invalid_metadata_gets_400_naming_the_field_and_changes_nothing(api, overrides, field, words):
    record_id = api.post("/api/records", {"title": "Kept"}, format="json").json()["id"]

    response = api.put(f"/api/records/{record_id}/draft", full_metadata(**overrides), format="json")

    assert response.status_code == 400
    errors = errors_by_field(response)
    assert field in errors, errors
    assert words.lower() in " ".join(errors[field]).lower()
    assert api.get(f"/api/records/{record_id}/draft").json()["metadata"]["title"] == "Kept"


def test_two_references_at_the_same_path_are_refused(api):
    record_id = api.post("/api/records", {}, format="json").json()["id"]
    reference = {"kind": "doi", "identifier": "10.5281/zenodo.1", "target_path": "data/a.csv", "sha256": SHA, "size": 1}

    response = api.put(f"/api/records/{record_id}/draft", {"data_references": [reference, reference]}, format="json")

    assert response.status_code == 400
    assert "data_references[1].target_path" in errors_by_field(response)


def test_put_replaces_lists(api):
    record_id = api.post("/api/records", full_metadata(), format="json").json()["id"]

    response = api.put(f"/api/records/{record_id}/draft", {"title": "Only a title"}, format="json")

    assert response.status_code == 200
    metadata = response.json()["metadata"]
    assert metadata["creators"] == [] and metadata["data_references"] == [] and metadata["license"] == ""


def test_malformed_json_is_a_400_not_a_500(api):
    response = api.generic("POST", "/api/records", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_wrong_types_are_400(api):
    response = api.post("/api/records", {"title": ["a"], "creators": "me", "keywords": "x"}, format="json")

    assert response.status_code == 400
    assert {"title", "creators", "keywords"} <= set(errors_by_field(response))


def test_anonymous_calls_get_401_with_a_challenge():
    client = APIClient()
    for method, url in [("post", "/api/records"), ("get", "/api/user/records"), ("get",
                                                                                 "/api/records/abcde-fghjk/draft")]:
        response = getattr(client, method)(url)
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert response["Content-Type"] == "application/problem+json"


def test_a_bad_token_gets_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nba_not-a-token")

    assert client.get("/api/user/records").status_code == 401


def test_a_revoked_token_no_longer_works(user):
    from repository.services.tokens import token_create, token_revoke

    token, raw = token_create(user=user, name="laptop")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/user/records").status_code == 200

    token_revoke(user=user, token_id=token.pk)

    assert client.get("/api/user/records").status_code == 401


def test_tokens_are_stored_hashed(user):
    from repository.models import AccessToken
    from repository.services.tokens import token_create

    token, raw = token_create(user=user, name="ci")

    assert raw not in AccessToken.objects.filter(pk=token.pk).values_list("token_hash", flat=True)[0]
    assert raw.startswith(token.prefix)


def test_someone_elses_draft_is_404(api, other_user):
    from repository.services.drafts import record_create

    theirs = record_create(owner=other_user, metadata={"title": "Secret"})
    record_id = theirs.record.public_id

    assert api.get(f"/api/records/{record_id}/draft").status_code == 404
    assert api.put(f"/api/records/{record_id}/draft", {"title": "Mine"}, format="json").status_code == 404
    assert api.get(f"/api/records/{record_id}/draft/files").status_code == 404
    assert api.put(f"/api/records/{record_id}/draft/files/a.txt", b"x",
                   content_type="application/octet-stream").status_code == 404


def test_user_records_lists_only_mine_in_a_fixed_number_of_queries(api, user, other_user,
                                                                   django_assert_max_num_queries):
    from repository.services.drafts import record_create

    for index in range(5):
        record_create(owner=user, metadata={"title": f"Mine {index}"})
    record_create(owner=other_user, metadata={"title": "Not mine"})

    with django_assert_max_num_queries(6):
        response = api.get("/api/user/records")

    assert response.status_code == 200
    assert sorted(item["title"] for item in response.json()) == [f"Mine {i}" for i in range(5)]


def test_unknown_api_url_is_problem_json_404(api):
    response = api.get("/api/nothing-here")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert "/api/records/{record_id}/draft/files/{file_path}" in document["paths"]
    assert "bearerAuth" in document["components"]["securitySchemes"]

    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content


def test_an_oversized_json_body_is_413_before_it_is_parsed(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = api.post("/api/records", {"title": "x" * 2000}, format="json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert "over 1000 bytes" in response.json()["detail"]


def test_a_version_can_loosen_the_comparison_tolerance(api):
    record_id = api.post("/api/records", {}, format="json").json()["id"]

    response = api.put(f"/api/records/{record_id}/draft", {"comparison_tolerance": {"rtol": 1e-6}}, format="json")

    assert response.status_code == 200
    assert response.json()["metadata"]["comparison_tolerance"] == {"rtol": 1e-6}


@pytest.mark.parametrize("tolerance", [{"rtol": -1}, {"speed": 3}, {"pixel_tolerance": 300}, [1, 2]])
def test_a_bad_comparison_tolerance_is_400(api, tolerance):
    record_id = api.post("/api/records", {}, format="json").json()["id"]

    response = api.put(f"/api/records/{record_id}/draft", {"comparison_tolerance": tolerance}, format="json")

    assert response.status_code == 400
    assert "comparison_tolerance" in errors_by_field(response)
