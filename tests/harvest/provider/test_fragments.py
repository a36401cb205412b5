"""The stored payloads of OAI-PMH items (harvest.OaiFragment): written by every change to what a record says,
equal to a fresh serialisation after it, never served once out of date, built on the fly when missing."""

import datetime
import logging

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from lxml import etree

from harvest.models import OaiFragment
from harvest.provider.formats import OAI_DATACITE, OAI_DC
from repository.models import Version
from repository.selectors import version_metadata
from repository.services.new_versions import version_new_draft
from repository.services.published import version_correct_metadata, version_withdraw
from tests.factories import accept, sync_pending

from .conftest import oai_id

pytestmark = pytest.mark.django_db


def assert_fresh(version: Version) -> None:
    """The stored row says what the exports say of the version now, for the datestamp it has now."""
    version = Version.objects.select_related("record").get(pk=version.pk)
    row = OaiFragment.objects.get(version=version)
    assert row.datestamp == version.public_changed_at
    if version.state == Version.State.WITHDRAWN:
        assert (row.oai_dc, row.oai_datacite) == ("", "")
    else:
        assert row.oai_dc == OAI_DC.render(version)
        assert row.oai_datacite == OAI_DATACITE.render(version)


def text_of(response) -> str:
    return etree.tostring(response.root, encoding="unicode")


def retitle_stored(version: Version, title: str) -> None:
    """Change the stored payloads only (not the version), as a marker of what is served."""
    row = OaiFragment.objects.get(version=version)
    row.oai_dc = row.oai_dc.replace(version.title, title)
    row.oai_datacite = row.oai_datacite.replace(version.title, title)
    row.save()


def record_xml(oai, version, prefix="oai_dc"):
    return oai(verb="GetRecord", identifier=oai_id(version), metadataPrefix=prefix)


def test_publishing_writes_the_payloads_and_pages_serve_them(oai, publish):
    version = publish(title="Stored once")
    assert_fresh(version)  # written at acceptance, still true once the DOI is registered
    # What is served is the stored text: a marker put there (with the right datestamp) comes out.
    retitle_stored(version, "Read from the row")
    for prefix in ("oai_dc", "oai_datacite"):
        for response in (oai(verb="ListRecords", metadataPrefix=prefix), record_xml(oai, version, prefix)):
            assert "Read from the row" in text_of(response)


def test_a_correction_rewrites_the_payloads(oai, publish, user):
    version = publish(title="Old title")
    version_correct_metadata(version=version, actor=user, reason="Typo",
                             metadata={**version_metadata(version), "title": "New title"})
    assert_fresh(version)
    for prefix in ("oai_dc", "oai_datacite"):
        text = text_of(oai(verb="ListRecords", metadataPrefix=prefix))
        assert "New title" in text and "Old title" not in text


def test_a_new_version_rewrites_the_previous_one(oai, publish, user, moderator):
    first = publish(title="First")
    second = version_new_draft(record=first.record, actor=user)
    second = accept(second, moderator)
    sync_pending(None)
    second.refresh_from_db()
    assert second.state == Version.State.PUBLISHED
    for version in (first, second):
        assert_fresh(version)
    # The first now links to the second (IsPreviousVersionOf) in what harvesters get.
    response = record_xml(oai, first, "oai_datacite")
    related = [e.text for e in response.findall(".//datacite:relatedIdentifier")]
    assert second.doi in related


def test_withdrawing_rewrites_the_version_and_its_siblings(oai, publish, user, moderator):
    first = publish()
    second = accept(version_new_draft(record=first.record, actor=user), moderator)
    sync_pending(None)
    version_withdraw(version=second, actor=moderator, reason="Wrong data.")
    for version in (first, second):
        assert_fresh(version)
    response = record_xml(oai, second)
    assert response.find(".//oai:header").get("status") == "deleted"
    assert response.find(".//oai:metadata") is None


def test_an_out_of_date_row_is_never_served(oai, publish, caplog):
    version = publish(title="Current")
    # A change the provider was not told about (only the datestamp moved): the row no longer matches it.
    retitle_stored(version, "Stale title")
    Version.objects.filter(pk=version.pk).update(public_changed_at=timezone.now() + datetime.timedelta(seconds=1))
    with caplog.at_level(logging.WARNING, logger="harvest.provider.fragments"):
        response = oai(verb="ListRecords", metadataPrefix="oai_dc")
    assert "Stale title" not in text_of(response) and "Current" in text_of(response)
    assert "1 version(s) had no up-to-date metadata fragments" in caplog.text
    assert_fresh(version)  # and stored again


def test_a_missing_row_is_built_on_the_fly_and_stored(oai, publish, caplog):
    version = publish(title="Unstored")
    OaiFragment.objects.all().delete()
    with caplog.at_level(logging.WARNING, logger="harvest.provider.fragments"):
        for prefix in ("oai_dc", "oai_datacite"):
            assert "Unstored" in text_of(oai(verb="ListRecords", metadataPrefix=prefix))
    assert "built them on the fly" in caplog.text
    assert_fresh(version)


def test_the_rebuild_command_writes_every_item(publish, moderator):
    versions = [publish(title=f"Item {i}") for i in range(3)]
    version_withdraw(version=versions[1], actor=moderator, reason="Duplicate.")
    OaiFragment.objects.all().delete()
    call_command("oai_fragments_rebuild", "--batch", "2")
    assert OaiFragment.objects.count() == 3
    for version in versions:
        assert_fresh(version)


def queries(captured) -> list[str]:
    return [q["sql"] for q in captured if not q["sql"].startswith("SET LOCAL")]


@pytest.mark.parametrize("verb, prefix", [("ListRecords", "oai_dc"), ("ListRecords", "oai_datacite"),
                                          ("ListIdentifiers", "oai_dc")])
def test_a_page_is_one_query_when_the_rows_are_stored(oai, publish, settings, verb, prefix):
    settings.OAI_PAGE_SIZE = 3
    published = [publish(title=f"Item {i}") for i in range(5)]
    # The page with its payloads and sets; the first page of a list that goes on also counts it, once (on
    # PostgreSQL the planner's estimate first, items.items_estimate). On PostgreSQL a SET LOCAL precedes the page
    # query to keep it serial (items._serial_read); it is not counted.
    with CaptureQueriesContext(connection) as captured:
        first = oai(verb=verb, metadataPrefix=prefix)
    assert len(queries(captured)) <= 3
    with CaptureQueriesContext(connection) as captured:
        last = oai(verb=verb, resumptionToken=first.token.text)
    assert len(queries(captured)) == 1
    assert [*first.identifiers, *last.identifiers] == [oai_id(v) for v in published]
