"""Search and file access: a closed notebook is found by its metadata, never by its text; the `access` facet and
filter in GET /api/records and /search; the index follows a change of access and an embargo's day."""

import datetime
import functools

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from repository import hooks
from repository.models import FileAccess, SearchDocument, Version
from repository.search import search_index_version, search_reindex
from tests.factories import published_with_access
from tests.search.conftest import found

pytestmark = pytest.mark.django_db

# Words only in the demo notebook: "linear_regression" in its code, "twelve temperatures" in its markdown.
NOTEBOOK_WORDS = ("linear_regression", '"twelve temperatures"')


def in_days(days: int) -> datetime.date:
    return timezone.now().date() + datetime.timedelta(days=days)


@pytest.fixture
def publish_with(user, moderator):
    """publish_with(access, embargo_until=None, **metadata) -> a published version whose files have that access
    from its deposit on."""
    return functools.partial(published_with_access, user, moderator)


def change_access(version: Version, access: str, embargo_until: datetime.date | None = None) -> Version:
    """What a correction of the access or an embargo lift does to the row, and the event it sends."""
    Version.objects.filter(pk=version.pk).update(access_files=access, embargo_until=embargo_until,
                                                 public_changed_at=timezone.now())
    version.refresh_from_db()
    hooks.send("version_corrected", version=version, actor=None, fields=["access"], reason="Access changed.")
    return version


@pytest.mark.parametrize(("access", "embargo_until"), [(FileAccess.EMBARGOED, 30), (FileAccess.RESTRICTED, None)])
def test_a_closed_notebook_is_found_by_its_metadata_never_by_its_text(publish_with, access, embargo_until):
    version = publish_with(access, in_days(embargo_until) if embargo_until else None,
                           title="Thermal expansion of copper", keywords=["metallurgy"],
                           creators=[{"name": "Curie, Marie"}], description="Dilatometry of pure copper.")
    assert found("copper") == ["Thermal expansion of copper"]
    assert found("metallurgy") == found("curie") == found("dilatometry") == ["Thermal expansion of copper"]
    for words in NOTEBOOK_WORDS:
        assert found(words) == [], words
    assert SearchDocument.objects.get(pk=version.pk).notebook_text == ""


def test_an_open_notebook_is_found_by_its_text(publish_with):
    """The other side of the test above: the same notebook, open, is found by the words only it holds."""
    publish_with(FileAccess.OPEN, title="Thermal expansion of copper")
    for words in NOTEBOOK_WORDS:
        assert found(words) == ["Thermal expansion of copper"], words


def test_lifting_an_embargo_opens_the_text_to_search(publish_with):
    version = publish_with(FileAccess.EMBARGOED, in_days(30), title="Embargoed expansion")
    assert found("linear_regression") == []

    change_access(version, FileAccess.OPEN, in_days(0))

    assert found("linear_regression") == ["Embargoed expansion"]
    assert found(filters={"access": ["open"]}) == ["Embargoed expansion"]


def test_restricting_an_open_version_removes_its_text(publish_with):
    version = publish_with(FileAccess.OPEN, title="Soon restricted")
    assert found("linear_regression") == ["Soon restricted"]

    change_access(version, FileAccess.RESTRICTED)

    assert found("linear_regression") == []
    assert found("restricted") == ["Soon restricted"]


def test_reindexing_one_version_on_the_embargos_day_opens_it(publish_with):
    """The lift job's day: the embargo has ended (the policy reads it open), the document is rewritten."""
    version = publish_with(FileAccess.EMBARGOED, in_days(1), title="Opens tomorrow")
    Version.objects.filter(pk=version.pk).update(embargo_until=in_days(0))
    assert found("linear_regression") == []  # nothing rewrote the document yet

    search_index_version(version=version)

    assert found("linear_regression") == ["Opens tomorrow"]
    assert SearchDocument.objects.get(pk=version.pk).access == FileAccess.OPEN


def test_a_full_reindex_keeps_closed_text_out(publish_with):
    publish_with(FileAccess.RESTRICTED, title="Restricted one")
    publish_with(FileAccess.OPEN, title="Open one")
    search_reindex()
    assert found("linear_regression") == ["Open one"]
    assert sorted(found()) == ["Open one", "Restricted one"]


def test_the_access_facet_and_filter_in_the_api(publish_with):
    publish_with(FileAccess.OPEN, title="Open seismics")
    publish_with(FileAccess.EMBARGOED, in_days(30), title="Embargoed seismics")
    publish_with(FileAccess.RESTRICTED, title="Restricted seismics")
    api = APIClient()

    body = api.get("/api/records", {"q": "seismics"}).json()
    assert body["hits"]["total"] == 3
    assert {b["key"]: (b["label"], b["doc_count"]) for b in body["aggregations"]["access"]["buckets"]} == {
        "open": ("Open", 1), "embargoed": ("Embargoed", 1), "restricted": ("Restricted", 1)}
    access = {hit["title"]: hit["access"] for hit in body["hits"]["hits"]}
    assert access == {"Open seismics": {"files": "open", "embargo_until": None},
                      "Embargoed seismics": {"files": "embargoed", "embargo_until": in_days(30).isoformat()},
                      "Restricted seismics": {"files": "restricted", "embargo_until": None}}

    closed = api.get("/api/records?q=seismics&access=embargoed&access=restricted").json()
    assert sorted(hit["title"] for hit in closed["hits"]["hits"]) == ["Embargoed seismics", "Restricted seismics"]
    # Counted without its own filter, as every facet is: the open bucket stays to widen the search again.
    assert {b["key"]: b["is_selected"] for b in closed["aggregations"]["access"]["buckets"]} == {
        "open": False, "embargoed": True, "restricted": True}

    refused = api.get("/api/records", {"access": "secret"})
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"field": "access", "messages": ["One of open, embargoed, restricted."]}]


def test_the_search_page_has_an_access_facet_and_says_when_files_are_closed(publish_with, client):
    publish_with(FileAccess.OPEN, title="Open seismics")
    publish_with(FileAccess.EMBARGOED, datetime.date(2031, 3, 1), title="Embargoed seismics")
    publish_with(FileAccess.RESTRICTED, title="Restricted seismics")

    page = client.get("/search", {"q": "seismics"}).content.decode()
    assert "Access" in page and "?q=seismics&amp;access=restricted" in page
    assert "Files embargoed until 1 Mar 2031" in page and "Files restricted" in page

    filtered = client.get("/search", {"q": "seismics", "access": "open"}).content.decode()
    assert "Open seismics" in filtered
    assert "Embargoed seismics" not in filtered and "Restricted seismics" not in filtered
