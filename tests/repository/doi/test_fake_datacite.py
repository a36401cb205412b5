"""The fake DataCite (tests/fakes/datacite.py), driven through the real `datacite` client over loopback HTTP.

Raw `requests` is used where the client cannot express a request or hides the answer (status codes it folds into
one exception, headers, JSON:API error bodies, anonymous reads).
"""

import copy
import re
import threading
import time

import pytest
import requests
from datacite import DataCiteRESTClient
from datacite.errors import (
    DataCiteError,
    DataCiteForbiddenError,
    DataCiteNotFoundError,
    DataCiteServerError,
    DataCiteUnauthorizedError,
    HttpError,
)

from tests.fakes.datacite import FakeDataCite
from tests.repository.doi.conftest import DATACITE_PASSWORD, DATACITE_PREFIX, DATACITE_USERNAME

AUTH = (DATACITE_USERNAME, DATACITE_PASSWORD)
LANDING = "https://nbarchive.example/notebooks/1"

METADATA = {
    "titles": [{"title": "A reproducible notebook"}],
    "creators": [
        {
            "name": "Doe, Jane",
            "nameType": "Personal",
            "givenName": "Jane",
            "familyName": "Doe",
            "affiliation": [{"name": "Example University"}],
        }
    ],
    "publisher": {"name": "nbarchive"},
    "publicationYear": "2024",
    "types": {"resourceTypeGeneral": "ComputationalNotebook", "resourceType": "Jupyter notebook"},
    "schemaVersion": "http://datacite.org/schema/kernel-4",
}


def metadata(**changes):
    """A fresh copy of valid 4.5 metadata (the client mutates what it is given), with `changes` applied."""
    result = copy.deepcopy(METADATA)
    result.update(changes)
    return result


def client_for(server, *, username=DATACITE_USERNAME, password=DATACITE_PASSWORD, prefix=DATACITE_PREFIX, timeout=5):
    return DataCiteRESTClient(username=username, password=password, prefix=prefix, test_mode=False,
                              url=server.url, timeout=timeout)


def put(server, doi, attributes, **kwargs):
    return requests.put(f"{server.url}/dois/{doi}", json={"data": {"type": "dois", "attributes": attributes}},
                        auth=AUTH, headers={"Content-Type": "application/vnd.api+json"}, timeout=5, **kwargs)


def post(server, attributes, **kwargs):
    return requests.post(f"{server.url}/dois", json={"data": {"type": "dois", "attributes": attributes}},
                         auth=AUTH, headers={"Content-Type": "application/vnd.api+json"}, timeout=5, **kwargs)


def sources(response):
    return {error.get("source") for error in response.json()["errors"]}


# --- creating ---------------------------------------------------------------------------------------------------


def test_draft_with_own_suffix_is_stored_and_answered_in_lower_case(datacite_server, datacite_client):
    doi = datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/NB-ABC")

    assert doi == f"{DATACITE_PREFIX}/nb-abc"
    assert datacite_server.state(f"{DATACITE_PREFIX}/NB-ABC") == "draft"
    assert datacite_server.all_dois() == {f"{DATACITE_PREFIX}/nb-abc": "draft"}
    assert datacite_server.doi(doi)["url"] is None


def test_post_with_only_a_prefix_mints_a_random_suffix(datacite_server, datacite_client):
    first = datacite_client.draft_doi()
    second = datacite_client.draft_doi()

    assert re.fullmatch(rf"{re.escape(DATACITE_PREFIX)}/[0-9a-z]{{4}}-[0-9a-z]{{4}}", first)
    assert first != second
    assert set(datacite_server.all_dois()) == {first, second}


def test_answers_are_json_api_documents(datacite_server, datacite_client):
    doi = datacite_client.public_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/shape")

    response = requests.get(f"{datacite_server.url}/dois/{doi}", auth=AUTH, timeout=5)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/vnd.api+json")
    data = response.json()["data"]
    assert (data["id"], data["type"]) == (doi, "dois")
    assert data["relationships"]["client"]["data"] == {"id": DATACITE_USERNAME.lower(), "type": "clients"}
    attributes = data["attributes"]
    assert (attributes["doi"], attributes["state"], attributes["url"]) == (doi, "findable", LANDING)
    assert attributes["prefix"] == DATACITE_PREFIX and attributes["suffix"] == "shape"
    assert attributes["isActive"] is True and attributes["registered"] is not None


def test_answers_use_datacites_legacy_shapes_unless_asked(datacite_server, datacite_client):
    # DataCite answers publisher as a string and affiliations as names unless the query asks for objects, and
    # publicationYear as a number: a provider that compares what it sent with what it reads must expect that.
    doi = datacite_client.public_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/shapes")

    legacy = datacite_client.get_metadata(doi)
    modern = requests.get(f"{datacite_server.url}/dois/{doi}?publisher=true&affiliation=true", auth=AUTH,
                          timeout=5).json()["data"]["attributes"]

    assert legacy["publisher"] == "nbarchive"
    assert legacy["creators"][0]["affiliation"] == ["Example University"]
    assert legacy["publicationYear"] == 2024
    assert modern["publisher"] == {"name": "nbarchive"}
    assert modern["creators"][0]["affiliation"] == [{"name": "Example University"}]
    assert datacite_server.doi(doi)["metadata"]["publicationYear"] == "2024"  # stored as sent


def test_post_of_an_existing_doi_is_422_already_taken(datacite_server, datacite_client):
    datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/twice")

    with pytest.raises(DataCiteServerError, match="This DOI has already been taken"):
        datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/TWICE")
    response = post(datacite_server, {"doi": f"{DATACITE_PREFIX}/twice"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["source"] == "doi"
    assert len(datacite_server.all_dois()) == 1


def test_put_on_an_unknown_doi_creates_it_and_answers_201(datacite_server, datacite_client):
    doi = f"{DATACITE_PREFIX}/by-put"

    # The client expects 200 from update_doi and raises on DataCite's 201, although the DOI was created.
    with pytest.raises(DataCiteServerError):
        datacite_client.update_doi(doi, metadata=metadata(), url=LANDING)
    assert datacite_server.state(doi) == "draft"
    assert datacite_server.doi(doi)["url"] == LANDING

    response = put(datacite_server, f"{DATACITE_PREFIX}/By-Put-2", {"event": "publish", "url": LANDING, **metadata()})
    assert response.status_code == 201
    assert response.json()["data"]["id"] == f"{DATACITE_PREFIX}/by-put-2"
    assert datacite_server.state(f"{DATACITE_PREFIX}/by-put-2") == "findable"


def test_malformed_payload_is_400(datacite_server):
    response = requests.post(f"{datacite_server.url}/dois", data=b"not json", auth=AUTH, timeout=5)

    assert response.status_code == 400
    assert datacite_server.all_dois() == {}


# --- reading ----------------------------------------------------------------------------------------------------


def test_get_of_an_unknown_doi_is_404_with_json_api_errors(datacite_server, datacite_client):
    with pytest.raises(DataCiteNotFoundError):
        datacite_client.get_metadata(f"{DATACITE_PREFIX}/nothing")
    response = requests.get(f"{datacite_server.url}/dois/{DATACITE_PREFIX}/nothing", auth=AUTH, timeout=5)

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/vnd.api+json")
    assert response.json()["errors"][0]["status"] == "404"


def test_names_are_case_insensitive(datacite_server, datacite_client):
    datacite_client.private_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/MiXeD")

    assert datacite_client.get_doi(f"{DATACITE_PREFIX}/MIXED") == LANDING
    assert datacite_client.get_metadata(f"{DATACITE_PREFIX}/mixed")["doi"] == f"{DATACITE_PREFIX}/mixed"


def test_readers_without_credentials_see_only_findable_dois(datacite_server, datacite_client):
    draft = datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/private")
    registered = datacite_client.private_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/registered")
    findable = datacite_client.public_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/public")

    def anonymous_status(doi):
        return requests.get(f"{datacite_server.url}/dois/{doi}", timeout=5).status_code

    assert (anonymous_status(draft), anonymous_status(registered), anonymous_status(findable)) == (404, 404, 200)


# --- authentication and prefixes ------------------------------------------------------------------------------


def test_wrong_credentials_are_401_and_change_nothing(datacite_server):
    client = client_for(datacite_server, password="wrong")

    with pytest.raises(DataCiteUnauthorizedError):
        client.draft_doi(doi=f"{DATACITE_PREFIX}/x")
    with pytest.raises(DataCiteUnauthorizedError):
        client.get_metadata(f"{DATACITE_PREFIX}/x")
    assert requests.post(f"{datacite_server.url}/dois", json={"data": {"attributes": {"prefix": DATACITE_PREFIX}}},
                         timeout=5).status_code == 401  # no credentials at all
    assert datacite_server.all_dois() == {}


def test_a_prefix_of_another_repository_is_403(datacite_server):
    client = client_for(datacite_server, prefix="10.99999")

    with pytest.raises(DataCiteForbiddenError):
        client.draft_doi(doi="10.99999/theirs")
    with pytest.raises(DataCiteForbiddenError):
        client.draft_doi()  # a random suffix under their prefix
    assert put(datacite_server, "10.99999/theirs", {"url": LANDING}).status_code == 403
    assert datacite_server.all_dois() == {}


def test_the_prefixes_and_credentials_are_configurable():
    with FakeDataCite(username="OTHER.REPO", password="pw", prefixes=["10.12345", "10.54321"]) as server:
        client = DataCiteRESTClient("OTHER.REPO", "pw", "10.54321", test_mode=False, url=server.url, timeout=5)
        assert client.draft_doi(doi="10.54321/a") == "10.54321/a"
        with pytest.raises(DataCiteUnauthorizedError):
            DataCiteRESTClient(DATACITE_USERNAME, DATACITE_PASSWORD, "10.54321", url=server.url,
                               timeout=5).draft_doi()
        assert server.all_dois() == {"10.54321/a": "draft"}


# --- states -----------------------------------------------------------------------------------------------------


def test_events_move_a_doi_through_its_states(datacite_server, datacite_client):
    doi = datacite_client.draft_doi(metadata(), doi=f"{DATACITE_PREFIX}/life")
    assert datacite_server.state(doi) == "draft"

    datacite_client.update_url(doi, LANDING)
    assert datacite_server.state(doi) == "draft"  # a URL alone registers nothing

    assert put(datacite_server, doi, {"event": "register"}).json()["data"]["attributes"]["state"] == "registered"
    datacite_client.show_doi(doi)  # event "publish"
    assert datacite_server.state(doi) == "findable"
    datacite_client.hide_doi(doi)
    assert datacite_server.state(doi) == "registered"
    datacite_client.show_doi(doi)
    assert datacite_server.state(doi) == "findable"


def test_transitions_that_do_not_exist_are_ignored_like_datacite_does(datacite_server, datacite_client):
    draft = datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/draft")
    findable = datacite_client.public_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/findable")

    datacite_client.hide_doi(draft)  # hide applies to findable DOIs only: 200, no change
    register_findable = put(datacite_server, findable, {"event": "register"})

    assert datacite_server.state(draft) == "draft"
    assert register_findable.status_code == 200
    assert datacite_server.state(findable) == "findable"


def test_nothing_returns_to_draft(datacite_server, datacite_client):
    doi = datacite_client.private_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/once")

    response = put(datacite_server, doi, {"event": "draft"})

    assert response.status_code == 422
    assert sources(response) == {"event"}
    assert datacite_server.state(doi) == "registered"


def test_publishing_needs_valid_metadata_and_is_refused_whole(datacite_server, datacite_client):
    bad = metadata(publisher="nbarchive", publicationYear=2024)  # 4.4 shapes: not valid against 4.5

    with pytest.raises(DataCiteServerError) as raised:
        datacite_client.public_doi(bad, LANDING, doi=f"{DATACITE_PREFIX}/bad")
    response = post(datacite_server, {"doi": f"{DATACITE_PREFIX}/bad", "event": "publish", "url": LANDING, **bad})

    assert "publisher" in str(raised.value)
    assert response.status_code == 422
    assert sources(response) == {"publisher", "publicationYear"}
    assert datacite_server.all_dois() == {}  # a refused create stores nothing


def test_registering_names_each_missing_attribute(datacite_server, datacite_client):
    doi = datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/bare")

    response = put(datacite_server, doi, {"event": "register"})

    assert response.status_code == 422
    assert sources(response) == {"url", "titles", "creators", "publisher", "publicationYear", "types"}
    assert all(error["uid"] == doi for error in response.json()["errors"])
    assert datacite_server.state(doi) == "draft"


def test_registered_dois_need_an_http_url(datacite_server, datacite_client):
    with pytest.raises(DataCiteServerError):
        datacite_client.private_doi(metadata(), "ftp://nbarchive.example/1", doi=f"{DATACITE_PREFIX}/ftp")
    response = post(datacite_server, {"doi": f"{DATACITE_PREFIX}/nourl", "event": "register", **metadata()})

    assert response.status_code == 422
    assert sources(response) == {"url"}
    assert datacite_server.all_dois() == {}


def test_drafts_need_only_their_name_but_what_they_have_must_be_well_formed(datacite_server, datacite_client):
    datacite_client.draft_doi({"titles": [{"title": "Only a title"}]}, doi=f"{DATACITE_PREFIX}/partial")
    response = post(datacite_server, {"doi": f"{DATACITE_PREFIX}/garbled", "titles": "not a list"})

    assert datacite_server.doi(f"{DATACITE_PREFIX}/partial")["metadata"]["titles"] == [{"title": "Only a title"}]
    assert response.status_code == 422 and sources(response) == {"titles"}


def test_unknown_attributes_are_refused(datacite_server):
    # DataCite drops unknown attributes silently; the fake refuses them so a misspelt field cannot vanish.
    response = post(datacite_server, {"doi": f"{DATACITE_PREFIX}/typo", "tittles": []})

    assert response.status_code == 422
    assert sources(response) == {"tittles"}


def test_an_update_merges_and_an_invalid_update_changes_nothing(datacite_server, datacite_client):
    doi = datacite_client.public_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/merge")

    datacite_client.update_doi(doi, metadata={"titles": [{"title": "New title"}]})
    stored = datacite_server.doi(doi)
    assert stored["metadata"]["titles"] == [{"title": "New title"}]
    assert stored["metadata"]["creators"] == METADATA["creators"]  # attributes not sent are kept

    response = put(datacite_server, doi, {"publisher": None, "url": "https://elsewhere.example/"})
    assert response.status_code == 422 and sources(response) == {"publisher"}
    assert datacite_server.doi(doi) == stored


def test_what_was_read_can_be_written_back(datacite_server, datacite_client):
    doi = datacite_client.public_doi(metadata(), LANDING, doi=f"{DATACITE_PREFIX}/roundtrip")
    attributes = requests.get(f"{datacite_server.url}/dois/{doi}?publisher=true&affiliation=true", auth=AUTH,
                              timeout=5).json()["data"]["attributes"]
    attributes["publicationYear"] = str(attributes["publicationYear"])  # answered as a number, the schema says string

    response = put(datacite_server, doi, attributes)

    assert response.status_code == 200, response.text


# --- deleting ---------------------------------------------------------------------------------------------------


def test_a_deleted_draft_is_gone_and_its_name_can_never_be_used_again(datacite_server, datacite_client):
    doi = datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/short-lived")

    datacite_client.delete_doi(doi)

    assert datacite_server.doi(doi) is None
    assert datacite_server.deleted_dois() == {doi}
    with pytest.raises(DataCiteNotFoundError):
        datacite_client.get_metadata(doi)
    with pytest.raises(DataCiteServerError, match="This DOI has already been taken"):
        datacite_client.draft_doi(doi=doi)
    again = put(datacite_server, doi, {"url": LANDING})
    assert again.status_code == 422
    assert again.json()["errors"][0]["title"] == "This DOI has already been taken"
    assert datacite_server.all_dois() == {}


@pytest.mark.parametrize("event", ["register", "publish"])
def test_registered_and_findable_dois_cannot_be_deleted(datacite_server, event):
    doi = f"{DATACITE_PREFIX}/permanent-{event}"
    assert post(datacite_server, {"doi": doi, "event": event, "url": LANDING, **metadata()}).status_code == 201

    response = requests.delete(f"{datacite_server.url}/dois/{doi}", auth=AUTH, timeout=5)

    # DataCite (lupo's destroy) answers 405 with an Allow header for anything but a draft.
    assert response.status_code == 405
    assert "DELETE" not in response.headers["Allow"]
    with pytest.raises(DataCiteServerError):
        client_for(datacite_server).delete_doi(doi)
    assert datacite_server.state(doi) == {"register": "registered", "publish": "findable"}[event]


def test_deleting_an_unknown_doi_is_404(datacite_client):
    with pytest.raises(DataCiteNotFoundError):
        datacite_client.delete_doi(f"{DATACITE_PREFIX}/never")


# --- faults -----------------------------------------------------------------------------------------------------


def test_fail_next_answers_errors_without_carrying_out_then_recovers_by_itself(datacite_server, datacite_client):
    datacite_server.fail_next(2, status=503)
    doi = f"{DATACITE_PREFIX}/retried"

    for _ in range(2):
        with pytest.raises(DataCiteServerError):
            datacite_client.draft_doi(doi=doi)
        assert datacite_server.state(doi) is None
    assert datacite_client.draft_doi(doi=doi) == doi

    log = datacite_server.requests
    assert [(r.method, r.status, r.fault) for r in log] == [("POST", 503, "fail"), ("POST", 503, "fail"),
                                                             ("POST", 201, None)]


def test_fail_with_lasts_until_recover_and_can_send_headers(datacite_server, datacite_client):
    datacite_server.fail_with(429, headers={"Retry-After": "7"})

    responses = [requests.get(f"{datacite_server.url}/dois/{DATACITE_PREFIX}/x", auth=AUTH, timeout=5)
                 for _ in range(3)]
    datacite_server.recover()

    assert [r.status_code for r in responses] == [429, 429, 429]
    assert responses[0].headers["Retry-After"] == "7"
    assert responses[0].json()["errors"][0]["status"] == "429"
    assert datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/after") == f"{DATACITE_PREFIX}/after"


def test_a_fault_can_be_limited_to_one_method(datacite_server, datacite_client):
    doi = datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/only-put")
    datacite_server.fail_next(1, status=500, method="put")

    assert datacite_client.get_metadata(doi)["state"] == "draft"  # GET is not affected
    with pytest.raises(DataCiteServerError):
        datacite_client.update_url(doi, LANDING)
    assert datacite_client.update_url(doi, LANDING) == LANDING


def test_hang_times_the_client_out_and_carries_nothing_out(datacite_server):
    client = client_for(datacite_server, timeout=0.3)
    datacite_server.hang(3)
    doi = f"{DATACITE_PREFIX}/hung"

    started = time.monotonic()
    with pytest.raises(HttpError):
        client.draft_doi(doi=doi)

    assert time.monotonic() - started < 2
    assert datacite_server.state(doi) is None
    assert client.draft_doi(doi=doi) == doi  # only the first request hung
    assert len(datacite_server.requests) == 2


def test_a_lost_answer_still_carries_out_the_request(datacite_server, datacite_client):
    datacite_server.lose_next()
    doi = f"{DATACITE_PREFIX}/lost"

    with pytest.raises(HttpError):
        datacite_client.public_doi(metadata(), LANDING, doi=doi)
    assert datacite_server.state(doi) == "findable"
    lost = datacite_server.requests[-1]
    assert (lost.status, lost.answered, lost.fault) == (201, False, "lose")

    # The retry a naive provider makes is refused: it must read the DOI first and reconcile.
    with pytest.raises(DataCiteServerError, match="This DOI has already been taken"):
        datacite_client.public_doi(metadata(), LANDING, doi=doi)


def test_a_lost_answer_can_arrive_as_a_timeout(datacite_server):
    client = client_for(datacite_server, timeout=0.3)
    doi = client.draft_doi(doi=f"{DATACITE_PREFIX}/slow")
    datacite_server.lose_next(delay=3, method="PUT")

    with pytest.raises(HttpError, match="(?i)timed? ?out"):
        client.update_url(doi, LANDING)

    assert datacite_server.doi(doi)["url"] == LANDING


def test_stop_does_not_wait_for_a_hanging_request(datacite_server):
    datacite_server.hang(60)
    outcome = []

    def read():
        try:
            requests.get(f"{datacite_server.url}/dois/{DATACITE_PREFIX}/x", auth=AUTH, timeout=30)
        except requests.ConnectionError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    while not datacite_server.requests:
        time.sleep(0.01)

    started = time.monotonic()
    datacite_server.stop()
    thread.join(timeout=5)

    assert time.monotonic() - started < 2
    assert not thread.is_alive()
    assert len(outcome) == 1  # the connection was closed without an answer


# --- bookkeeping ------------------------------------------------------------------------------------------------


def test_the_request_log_has_method_path_and_body(datacite_server, datacite_client):
    doi = datacite_client.draft_doi(doi=f"{DATACITE_PREFIX}/logged")
    datacite_client.get_metadata(doi)
    datacite_client.delete_doi(doi)

    log = datacite_server.requests
    assert [(r.method, r.path, r.status) for r in log] == [
        ("POST", "/dois", 201),
        ("GET", f"/dois/{doi}", 200),
        ("DELETE", f"/dois/{doi}", 204),
    ]
    assert log[0].json()["data"]["attributes"]["doi"] == doi
    assert log[0].headers["content-type"] == "application/vnd.api+json"
    assert log[2].body == b""


def test_seed_stores_a_doi_under_the_same_rules(datacite_server, datacite_client):
    seeded = datacite_server.seed(f"{DATACITE_PREFIX}/Seeded", state="findable", url=LANDING, metadata=metadata())

    assert seeded["doi"] == f"{DATACITE_PREFIX}/seeded" and seeded["state"] == "findable"
    assert datacite_client.get_doi(f"{DATACITE_PREFIX}/seeded") == LANDING
    assert datacite_server.requests[:-1] == []  # seeding is not a request
    with pytest.raises(ValueError):
        datacite_server.seed(f"{DATACITE_PREFIX}/incomplete", state="registered", url=LANDING)


def test_concurrent_clients_get_distinct_dois(datacite_server, datacite_client):
    minted, failures = [], []

    def mint():
        try:
            minted.append(datacite_client.draft_doi())
        except (DataCiteError, HttpError) as exc:  # a thread's exception would otherwise vanish
            failures.append(exc)

    threads = [threading.Thread(target=mint) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert failures == []
    assert len(set(minted)) == 20
    assert set(datacite_server.all_dois()) == set(minted)
    assert len(datacite_server.requests) == 20


def test_a_failure_rate_fails_that_share_of_requests_the_same_way_for_the_same_seed():
    def statuses(seed: int) -> list[int]:
        with FakeDataCite(username=DATACITE_USERNAME, password=DATACITE_PASSWORD, prefixes=(DATACITE_PREFIX,),
                          failure_rate=0.3, failure_seed=seed) as server:
            return [requests.get(f"{server.url}/dois/{DATACITE_PREFIX}/none", timeout=5).status_code
                    for _ in range(200)]

    first, again, other = statuses(7), statuses(7), statuses(8)

    failed = [status for status in first if status != 404]
    assert first == again and first != other
    assert 40 <= len(failed) <= 80 and set(failed) <= {500, 502, 503, 504}
