"""Search and browse through HTTP: GET /api/records, /search, the home page, the communities' pages and API."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from moderation.models import Community
from moderation.services import review_submit
from moderation.workflow import transition
from repository.models import Version
from tests.factories import demo_draft, sync_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def anonymous():
    return APIClient()


def test_get_api_records_is_public_and_shaped_like_invenio(publish, anonymous):
    for title in ("Seismic tomography", "Seismic noise", "Ocean heat"):
        publish(title=title, keywords=["geophysics"])
    response = anonymous.get("/api/records", {"q": "seismic", "size": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["hits"]["total"] == 2
    [hit] = body["hits"]["hits"]
    assert hit["title"] in ("Seismic tomography", "Seismic noise")
    assert hit["links"]["self_html"].endswith(f"/records/{hit['id']}/versions/1/")
    assert hit["creators"] == [{"name": "Doe, Jane", "orcid": "", "affiliation": ""}]
    assert body["aggregations"]["keyword"]["buckets"] == [
        {"key": "geophysics", "label": "geophysics", "doc_count": 2, "is_selected": False}]
    assert set(body["aggregations"]) == {"community", "resource_type", "verdict", "license", "year", "access",
                                         "keyword", "creator"}
    assert body["sortBy"] == "bestmatch"
    assert "page=2" in body["links"]["next"] and "q=seismic" in body["links"]["next"]
    second = anonymous.get(body["links"]["next"]).json()
    assert second["hits"]["hits"][0]["title"] != hit["title"] and "next" not in second["links"]


def test_the_search_api_answers_in_a_fixed_number_of_queries(publish, anonymous):
    publish(title="Seismic tomography")
    with CaptureQueriesContext(connection) as few:
        anonymous.get("/api/records", {"q": "seismic"})
    for title in ("Seismic A", "Seismic B", "Seismic C"):
        publish(title=title, keywords=["a", "b"], creators=[{"name": f"Person {title}"}])
    with CaptureQueriesContext(connection) as more:
        assert anonymous.get("/api/records", {"q": "seismic"}).json()["hits"]["total"] == 4
    assert len(more) == len(few)


def test_posting_to_api_records_still_creates_a_draft(api, anonymous):
    assert api.post("/api/records", {"title": "New"}, format="json").status_code == 201
    assert anonymous.post("/api/records", {"title": "New"}, format="json").status_code in (401, 403)


@pytest.mark.parametrize(("params", "field"), [
    ({"q": "colour:red"}, "q"), ({"size": "100000"}, "size"), ({"page": "-1"}, "page"), ({"page": "abc"}, "page"),
    ({"sort": "random"}, "sort"), ({"year": "recent"}, "year"), ({"resource_type": "Poem"}, "resource_type"),
])
def test_bad_searches_get_a_400_naming_the_parameter(db, anonymous, params, field):
    response = anonymous.get("/api/records", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_lenient_queries_answer_200(db, anonymous):
    for q in ['"unbalanced', "a OR", "-", "(((", "title:", "'; drop table x", "nul\x00byte", "ü" * 900]:
        assert anonymous.get("/api/records", {"q": q}).status_code == 200, q
    assert anonymous.get("/api/records", {"license": "MIT\x00", "keyword": "\x00"}).status_code == 200


def test_the_search_page_filters_by_facet_and_links_to_the_landing_page(publish, client):
    publish(title="Seismic tomography", license="MIT")
    publish(title="Seismic noise", license="CC0-1.0")
    page = client.get("/search", {"q": "seismic"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Seismic tomography" in html and "Seismic noise" in html
    assert "?q=seismic&amp;license=MIT" in html  # the facet's link adds the filter
    filtered = client.get("/search", {"q": "seismic", "license": "MIT"}).content.decode()
    assert "Seismic tomography" in filtered and "Seismic noise" not in filtered
    assert 'aria-current="true" data-key="MIT"' in filtered
    version = Version.objects.get(title="Seismic tomography")
    assert f'href="/records/{version.record.public_id}/versions/1/"' in filtered


def test_the_search_page_explains_a_bad_query_with_a_400(db, client):
    response = client.get("/search", {"q": "colour:red"})
    assert response.status_code == 400
    assert "Unknown field" in response.content.decode()


def test_records_redirects_to_search_and_every_page_links_to_it(db, client):
    response = client.get("/records/", {"q": "x"})
    assert response.status_code == 302 and response["Location"] == "/search?q=x"
    assert 'href="/search"' in client.get("/communities/").content.decode()


def _community_record(user, moderator, community, **metadata) -> Version:
    review = review_submit(version=demo_draft(user, **metadata), actor=user, community=community)
    transition(request_id=review.pk, action="accept", actor=moderator)
    sync_pending()
    return Version.objects.get(pk=review.version_id)


@pytest.fixture
def community(moderator):
    community = Community.objects.create(slug="geo", name="Geophysics", description="Rocks and waves.",
                                         curation_policy="Notebooks that re-run from public seismic data.")
    moderator.first_name, moderator.last_name = "Ada", "Moderator"
    moderator.save()
    community.moderators.add(moderator)
    return community


def test_communities_pages_and_api(user, moderator, community, client, anonymous, publish):
    _community_record(user, moderator, community, title="Seismic tomography of Iceland")
    publish(title="Seismic noise elsewhere")

    listing = client.get("/communities/").content.decode()
    assert "Geophysics" in listing and "1 record" in listing

    page = client.get("/communities/geo/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Notebooks that re-run from public seismic data." in html and "Ada Moderator" in html
    assert "Seismic tomography of Iceland" in html and "Seismic noise elsewhere" not in html
    assert "Seismic tomography" in client.get("/communities/geo/", {"q": "iceland"}).content.decode()
    assert client.get("/communities/nope/").status_code == 404

    api = anonymous.get("/api/communities").json()
    assert api["hits"]["total"] == 1
    [geo] = api["hits"]["hits"]
    assert (geo["slug"], geo["record_count"], geo["moderators"]) == ("geo", 1, ["Ada Moderator"])
    records = anonymous.get(geo["links"]["records"]).json()
    assert [h["title"] for h in records["hits"]["hits"]] == ["Seismic tomography of Iceland"]
    assert records["aggregations"]["community"]["buckets"][0]["label"] == "Geophysics"
    one = anonymous.get("/api/communities/geo").json()
    assert one["curation_policy"].startswith("Notebooks") and one["record_count"] == 1
    assert anonymous.get("/api/communities/nope").status_code == 404


def test_the_home_page_has_a_search_box_the_newest_records_and_the_communities(user, moderator, community, client,
                                                                                 publish):
    publish(title="Oldest")
    publish(title="Newest")
    html = client.get("/").content.decode()
    assert 'role="search"' in html and 'action="/search"' in html
    assert html.index("Newest") < html.index("Oldest")
    assert 'href="/communities/geo/"' in html


def test_the_openapi_schema_describes_the_search(db, anonymous):
    schema = anonymous.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    get = schema["paths"]["/api/records"]["get"]
    assert {"q", "sort", "page", "size", "license", "creator", "all_versions"} <= {p["name"] for p in get["parameters"]}
    assert "post" in schema["paths"]["/api/records"]
    assert "/api/communities" in schema["paths"]
