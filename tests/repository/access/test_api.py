"""Access requests, grants and share links through the HTTP API: status codes, field errors, problem+json, 404
for everyone but the owners on the owners' routes, and bounded queries on the lists."""

import datetime

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from repository.access.models import AccessGrant, AccessRequest, ShareLink
from repository.access.policy import can_read_files
from tests.factories import UserFactory, published_version
from tests.repository.access.conftest import client_for

pytestmark = pytest.mark.django_db

MESSAGE = "I referee the paper and need the measurements."


def _url(restricted, tail: str) -> str:
    return f"/api/records/{restricted.record.public_id}/access/{tail}"


@pytest.fixture
def as_owner(owner):
    return client_for(owner)


@pytest.fixture
def as_reader(reader):
    return client_for(reader)


@pytest.fixture
def as_stranger(db):
    return client_for(UserFactory(username="stranger"))


def _ask(client, restricted, body=None):
    return client.post(_url(restricted, "requests"), body if body is not None else {"message": MESSAGE},
                       format="json")


def test_a_reader_asks_and_an_owner_accepts_until_a_day(restricted, as_reader, as_owner, reader,
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = _ask(as_reader, restricted)
    assert response.status_code == 201, response.content
    assert response.json()["number"] == 1 and response.json()["state"] == "pending"
    assert response.json()["requester"] == {"username": "reader", "name": "Rita Reader"}
    assert [m.to for m in mail.outbox] == [["owner@example.org"]]

    listed = as_owner.get(_url(restricted, "requests"))
    assert listed.status_code == 200 and [r["message"] for r in listed.json()] == [MESSAGE]

    until = (datetime.date.today() + datetime.timedelta(days=60)).isoformat()
    assert not can_read_files(reader, restricted)
    with django_capture_on_commit_callbacks(execute=True):
        accepted = as_owner.post(_url(restricted, "requests/1/actions/accept"), {"until": until}, format="json")
    assert accepted.status_code == 200, accepted.content
    body = accepted.json()
    assert (body["state"], body["until"], body["decided_by"]) == ("accepted", until, "owner")
    assert body["grant"]["user"]["username"] == "reader" and body["grant"]["request"] == 1
    assert can_read_files(reader, restricted)
    assert "Access granted" in mail.outbox[-1].subject and mail.outbox[-1].to == ["reader@example.org"]

    again = as_owner.post(_url(restricted, "requests/1/actions/decline"), {}, format="json")
    assert again.status_code == 409 and again["Content-Type"] == "application/problem+json"
    assert again.json()["code"] == "conflict" and "accepted already" in again.json()["detail"]


def test_accepting_twice_is_a_conflict(restricted, as_reader, as_owner):
    _ask(as_reader, restricted)
    assert as_owner.post(_url(restricted, "requests/1/actions/accept"), format="json").status_code == 200
    second = as_owner.post(_url(restricted, "requests/1/actions/accept"), format="json")
    assert second.status_code == 409 and "accepted already" in second.json()["detail"]
    assert AccessGrant.objects.count() == 1


def test_declining_with_a_reason(restricted, as_reader, as_owner, django_capture_on_commit_callbacks):
    _ask(as_reader, restricted)
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner.post(_url(restricted, "requests/1/actions/decline"),
                                 {"reason": "Consortium members only."}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "declined"
    assert "Consortium members only." in mail.outbox[-1].body


def test_a_second_pending_request_is_409(restricted, as_reader):
    assert _ask(as_reader, restricted).status_code == 201
    response = _ask(as_reader, restricted)
    assert response.status_code == 409 and "still waiting" in response.json()["detail"]


def test_an_owner_asking_for_their_own_record_is_409(restricted, as_owner):
    response = _ask(as_owner, restricted)
    assert response.status_code == 409 and "You own this record" in response.json()["detail"]


@pytest.mark.parametrize("body, field, expected", [
    ({}, "message", "This field is required."),
    ({"message": ""}, "message", "This field may not be blank."),
    ({"message": "x" * 2001}, "message", "no more than 2000 characters"),
    ({"message": MESSAGE, "email": "me@example.org"}, "email", "Unknown field"),
])
def test_request_field_errors(restricted, as_reader, body, field, expected):
    response = _ask(as_reader, restricted, body)
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    errors = {error["field"]: error["messages"] for error in response.json()["errors"]}
    assert expected in " ".join(errors[field])
    assert not AccessRequest.objects.exists()


@pytest.mark.parametrize("body, field", [({"until": "30/06/2027"}, "until"), ({"until": "2020-01-01"}, "until"),
                                         ({"until": "2099-01-01", "note": "x"}, "note")])
def test_accept_field_errors(restricted, as_reader, as_owner, body, field):
    _ask(as_reader, restricted)
    response = as_owner.post(_url(restricted, "requests/1/actions/accept"), body, format="json")
    assert response.status_code == 400
    assert field in {error["field"] for error in response.json()["errors"]}
    assert AccessRequest.objects.get().state == "pending"


def test_asking_needs_a_signed_in_reader_and_a_published_record(restricted, owner):
    response = _ask(APIClient(), restricted)
    assert response.status_code == 401 and response["Content-Type"] == "application/problem+json"
    from tests.factories import demo_draft

    draft = demo_draft(owner)
    hidden = client_for(UserFactory()).post(f"/api/records/{draft.record.public_id}/access/requests",
                                            {"message": MESSAGE}, format="json")
    assert hidden.status_code == 404  # a draft's existence is not told


def test_an_open_record_has_nothing_to_ask_for(owner, moderator, as_reader):
    version = published_version(owner, moderator)
    response = as_reader.post(f"/api/records/{version.record.public_id}/access/requests", {"message": MESSAGE},
                              format="json")
    assert response.status_code == 409 and "No version of this record has restricted files" in response.json()[
        "detail"]


def test_owner_routes_are_404_for_everyone_else_and_401_without_credentials(restricted, as_reader, as_stranger,
                                                                            as_owner):
    _ask(as_reader, restricted)
    grant_id = AccessGrant.objects.create(record=restricted.record, user=UserFactory(), granted_by=None).pk
    link_id = as_owner.post(_url(restricted, "links"), {}, format="json").json()["id"]
    routes = [("get", "requests"), ("post", "requests/1/actions/accept"), ("post", "requests/1/actions/decline"),
              ("get", "grants"), ("delete", f"grants/{grant_id}"), ("get", "links"), ("post", "links"),
              ("delete", f"links/{link_id}")]
    for client in (as_reader, as_stranger):
        for method, tail in routes:
            response = getattr(client, method)(_url(restricted, tail), {}, format="json")
            assert response.status_code == 404, (method, tail, response.content)
            assert response.json()["detail"] == f"No record '{restricted.record.public_id}' that you own."
    for method, tail in routes:
        assert getattr(APIClient(), method)(_url(restricted, tail), {}, format="json").status_code == 401
    # Nothing changed.
    assert AccessRequest.objects.get().state == "pending" and AccessGrant.objects.get().revoked_at is None
    assert ShareLink.objects.get().revoked_at is None


def test_unknown_requests_grants_and_links_are_404(restricted, as_owner):
    assert as_owner.post(_url(restricted, "requests/9/actions/accept"), format="json").status_code == 404
    assert as_owner.delete(_url(restricted, "grants/999999")).status_code == 404
    assert as_owner.delete(_url(restricted, "links/999999")).status_code == 404


def test_grants_are_listed_and_revoked(restricted, as_reader, as_owner, reader, django_assert_max_num_queries):
    _ask(as_reader, restricted)
    as_owner.post(_url(restricted, "requests/1/actions/accept"), format="json")
    for _ in range(3):  # more rows must not mean more queries
        AccessGrant.objects.create(record=restricted.record, user=UserFactory(), granted_by=None)
    with django_assert_max_num_queries(8):
        listed = as_owner.get(_url(restricted, "grants"))
    assert listed.status_code == 200 and len(listed.json()) == 4
    grant = next(g for g in listed.json() if g["user"]["username"] == "reader")
    assert grant["request"] == 1 and grant["granted_by"] == "owner" and grant["until"] is None

    assert as_owner.delete(_url(restricted, f"grants/{grant['id']}")).status_code == 204
    assert not can_read_files(reader, restricted)
    assert as_owner.delete(_url(restricted, f"grants/{grant['id']}")).status_code == 204  # DELETE is idempotent
    assert len(as_owner.get(_url(restricted, "grants")).json()) == 3


def test_requests_list_in_bounded_queries(restricted, as_owner, django_assert_max_num_queries):
    for index in range(4):
        client_for(UserFactory()).post(_url(restricted, "requests"), {"message": f"Please {index}"}, format="json")
    with django_assert_max_num_queries(8):
        listed = as_owner.get(_url(restricted, "requests"))
    assert [r["number"] for r in listed.json()] == [4, 3, 2, 1]


def test_a_share_link_is_shown_once_as_an_absolute_url_and_listed_without_it(restricted, as_owner,
                                                                           django_assert_max_num_queries):
    expires = (datetime.date.today() + datetime.timedelta(days=14)).isoformat()
    response = as_owner.post(_url(restricted, "links"), {"expires": expires, "label": "Referee 2"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"].startswith(f"{settings.SITE_URL}/access/share/")
    assert (body["label"], body["state"], body["uses"]) == ("Referee 2", "live", 0)
    assert body["expires_at"].startswith((datetime.date.fromisoformat(expires) + datetime.timedelta(days=1))
                                         .isoformat())
    token = body["url"].rsplit("/", 1)[-1]

    for _ in range(3):
        as_owner.post(_url(restricted, "links"), {}, format="json")
    with django_assert_max_num_queries(8):
        listed = as_owner.get(_url(restricted, "links"))
    assert listed.status_code == 200 and len(listed.json()) == 4
    assert token not in listed.content.decode() and all("url" not in link for link in listed.json())

    # The link works, in a browser, until it is revoked.
    assert Client().get(f"/access/share/{token}").status_code == 302
    assert as_owner.delete(_url(restricted, f"links/{body['id']}")).status_code == 204
    assert Client().get(f"/access/share/{token}").status_code == 404
    revoked = next(link for link in as_owner.get(_url(restricted, "links")).json() if link["id"] == body["id"])
    assert (revoked["state"], revoked["uses"]) == ("revoked", 1)


@pytest.mark.parametrize("body, field", [({"expires": "2020-01-01"}, "expires"), ({"expires": "soon"}, "expires"),
                                         ({"label": "x" * 201}, "label"), ({"token": "mine"}, "token")])
def test_share_link_field_errors(restricted, as_owner, body, field):
    response = as_owner.post(_url(restricted, "links"), body, format="json")
    assert response.status_code == 400
    assert field in {error["field"] for error in response.json()["errors"]}
    assert not ShareLink.objects.exists()


def test_the_schema_describes_the_access_routes(as_owner):
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert set(paths["/api/records/{record_id}/access/requests"]) >= {"get", "post"}
    accept = paths["/api/records/{record_id}/access/requests/{number}/actions/accept"]["post"]
    assert {"200", "400", "401", "404", "409"} <= set(accept["responses"])
    assert "examples" in accept["responses"]["409"]["content"]["application/problem+json"]
    assert schema["components"]["schemas"]["ShareLinkInput"]["additionalProperties"] is False
