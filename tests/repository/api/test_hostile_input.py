"""Input an attacker (or a broken client) sends: every one is answered with a 4xx that says why, never a 500."""

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from repository.json_input import MAX_JSON_DEPTH, JSONTooDeep, json_loads_bounded
from repository.services.drafts import draft_update, record_create
from tests.repository.web.helpers import deposit_post

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def test_json_nested_100000_levels_is_a_400_on_an_authenticated_body(api):
    response = api.post("/api/records", data=DEEP, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert "nested more than" in response.json()["detail"]


def test_json_nested_100000_levels_is_a_400_on_a_put(api, user):
    draft = record_create(owner=user, metadata={"title": "Kept"})

    response = api.put(f"/api/records/{draft.record.public_id}/draft", data=DEEP, content_type="application/json")

    assert response.status_code == 400, response.content[:300]
    draft.refresh_from_db()
    assert draft.title == "Kept"


def test_json_nested_100000_levels_is_a_400_on_the_anonymous_gitlab_hook():
    response = APIClient().post("/api/hooks/gitlab", data=DEEP, content_type="application/json",
                                HTTP_X_GITLAB_TOKEN="whatever", HTTP_X_GITLAB_EVENT="Tag Push Hook")

    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"


def test_a_query_nested_deeper_than_the_limit_is_refused_but_a_normal_one_is_kept(api):
    too_deep = json.loads(nested(MAX_JSON_DEPTH))  # plus the body's own levels: over the limit
    reference = {"kind": "archive_query", "identifier": "https://archive.example.org/api/query",
                 "target_path": "data/q.json", "sha256": "b" * 64, "size": 10, "query": too_deep}

    refused = api.post("/api/records", {"data_references": [reference]}, format="json")
    assert refused.status_code == 400 and "nested more than" in refused.json()["detail"]

    reference["query"] = {"results.material.elements": ["Ti", "O"], "nested": {"a": {"b": [1, 2]}}}
    kept = api.post("/api/records", {"data_references": [reference]}, format="json")
    assert kept.status_code == 201, kept.content


def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"title": "[" * 1000 + '\\"{' * 500})

    assert json_loads_bounded(text) == json.loads(text)
    with pytest.raises(JSONTooDeep):
        json_loads_bounded(nested(MAX_JSON_DEPTH + 1))
    assert json_loads_bounded(nested(MAX_JSON_DEPTH)) == json.loads(nested(MAX_JSON_DEPTH))


@pytest.mark.parametrize("field", ["comparison_tolerance"])
def test_deep_json_in_a_web_form_field_is_a_form_error(client, user, field):
    version = record_create(owner=user, metadata={"title": "Web"})
    draft_update(version=version, actor=user, metadata={"title": "Web"})
    client.force_login(user)
    url = reverse("repository:draft_edit", kwargs={"record_id": version.record.public_id})

    response = client.post(url, deposit_post({"title": "Changed", field: DEEP}))

    assert response.status_code == 200
    assert "nested more than" in response.content.decode()
    version.refresh_from_db()
    assert version.title == "Web"


def test_deep_json_in_a_web_query_field_is_a_form_error(client, user):
    version = record_create(owner=user, metadata={"title": "Web"})
    client.force_login(user)
    url = reverse("repository:draft_edit", kwargs={"record_id": version.record.public_id})
    reference = {"kind": "archive_query", "identifier": "https://archive.example.org/api/query",
                 "target_path": "data/q.json", "sha256": "b" * 64, "query": DEEP}

    response = client.post(url, deposit_post({"title": "Changed"}, data_references=[reference]))

    assert response.status_code == 200
    assert "nested more than" in " ".join(response.context["formsets"]["data_references"].forms[0].errors["query"])


@pytest.mark.parametrize("size", [2**63, 10**30])
def test_a_size_past_any_database_integer_is_a_field_error(api, size):
    reference = {"kind": "url", "identifier": "https://data.example.org/x.csv", "target_path": "data/x.csv",
                 "sha256": "b" * 64, "size": size}

    response = api.post("/api/records", {"title": "Big", "data_references": [reference]}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == "data_references[0].size"


def test_a_size_past_any_database_integer_is_a_form_error_on_the_web(client, user):
    version = record_create(owner=user, metadata={"title": "Web"})
    client.force_login(user)
    url = reverse("repository:draft_edit", kwargs={"record_id": version.record.public_id})
    reference = {"kind": "url", "identifier": "https://data.example.org/x.csv", "target_path": "data/x.csv",
                 "sha256": "b" * 64, "size": str(10**30)}

    response = client.post(url, deposit_post({"title": "Changed"}, data_references=[reference]))

    assert response.status_code == 200
    assert response.context["formsets"]["data_references"].forms[0].errors["size"]


@pytest.mark.parametrize("body", [{"project": [1]}, {"project": "x"}, {"project_id": 10**30}, [1, 2], "text",
                                  {"project_id": True, "object_kind": ["tag_push"]}])
def test_the_anonymous_gitlab_hook_answers_any_shape_of_json_without_a_500(body):
    response = APIClient().post("/api/hooks/gitlab", data=json.dumps(body), content_type="application/json",
                                HTTP_X_GITLAB_TOKEN="wrong", HTTP_X_GITLAB_EVENT="Tag Push Hook")

    assert response.status_code == 403, response.content


def test_an_unterminated_string_of_escaped_quotes_is_refused_at_once(api):
    """The depth scan skips strings with a regex; it must stay linear on text crafted against it (a quote followed
    by 100,000 escaped quotes took minutes when the closing quote was required)."""
    import time

    body = '{"title": "' + '\\"' * 100_000
    started = time.monotonic()

    response = api.post("/api/records", data=body, content_type="application/json")

    assert response.status_code == 400
    assert time.monotonic() - started < 10
