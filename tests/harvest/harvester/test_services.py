"""harvest_source_register / harvest_source_run against an OAI-PMH repository on loopback (tests/fakes/oai_pmh.py)."""

from datetime import date

import pytest
from django.utils import timezone

from harvest.harvester.client import NotOaiPmh, OaiProtocolError, SourceUnreachable
from harvest.harvester.services import harvest_source_register, harvest_source_run
from harvest.models import HarvestedRecord, HarvestSource
from repository.errors import InvalidInput
from tests.fakes.oai_pmh import DAY, FakeOaiPmh, FakeRecord
from tests.harvest.harvester.conftest import minutes, sample_records

pytestmark = pytest.mark.django_db

DATACITE = """<resource xmlns="http://datacite.org/schema/kernel-4">
  <identifier identifierType="DOI">{doi}</identifier>
  <creators><creator><creatorName>{creator}</creatorName></creator></creators>
  <titles><title>{title}</title></titles><publisher>X</publisher><publicationYear>2020</publicationYear>
  <resourceType resourceTypeGeneral="Dataset"/>
</resource>"""


def harvest(server, **options):
    source = harvest_source_register(base_url=server.url, set_spec=options.pop("set_spec", ""),
                                     metadata_prefix=options.pop("metadata_prefix", "oai_dc"))
    return harvest_source_run(source_pk=source.pk, retries=0, **options), HarvestSource.objects.get(pk=source.pk)


def record(identifier: str) -> HarvestedRecord:
    return HarvestedRecord.objects.get(oai_identifier=identifier)


def test_a_first_harvest_imports_every_page(oai_server):
    summary, source = harvest(oai_server)

    assert (summary.created, summary.deleted, summary.updated, summary.failed) == (4, 1, 0, 0)
    ocean = record("oai:fake.example:1")
    assert ocean.title == "Ocean temperatures 1990-2020"
    assert ocean.creators == ["Doe, Jane", "Roe, Richard"]
    assert ocean.doi == "10.5281/zenodo.111"
    assert ocean.identifiers == ["https://fake.example/records/1"]
    assert (ocean.publication_year, ocean.resource_type, ocean.set_specs) == (2021, "Dataset", ["data"])
    assert ocean.datestamp == minutes(0)
    assert "<dc:title>Ocean temperatures 1990-2020</dc:title>" in ocean.raw_metadata
    assert {r.oai_identifier: r.doi for r in HarvestedRecord.objects.exclude(deleted=True)} == {
        "oai:fake.example:1": "10.5281/zenodo.111", "oai:fake.example:2": "10.1234/soil.2",
        "oai:fake.example:3": "10.1234/galaxy.3", "oai:fake.example:4": "10.1234/nb.4"}
    assert record("oai:fake.example:5").deleted
    # Three pages of two, the later ones asked for by resumption token alone.
    pages = oai_server.list_requests()
    assert pages[0] == {"verb": "ListRecords", "metadataPrefix": "oai_dc"}
    assert [p.get("resumptionToken") for p in pages[1:]] == ["t1", "t2"]
    assert (source.repository_name, source.harvested_until) == ("Fake OAI-PMH repository", minutes(4))
    assert source.last_run_outcome == "4 new, 0 updated, 1 deleted, 0 unchanged, 0 failed"


def test_the_next_harvest_asks_only_for_what_changed(oai_server):
    harvest(oai_server)
    oai_server.add(FakeRecord("oai:fake.example:6", minutes(10), title="New data", identifiers=["10.1234/new.6"]))
    oai_server.forget_requests()

    summary, source = harvest(oai_server)

    assert oai_server.list_requests()[0]["from"] == "2024-03-01T12:04:00Z"
    # `from` is inclusive: the last item of the previous harvest comes again, and changes nothing.
    assert (summary.created, summary.unchanged, summary.updated) == (1, 1, 0)
    assert HarvestedRecord.objects.count() == 6
    assert source.harvested_until == minutes(10)


def test_harvesting_everything_again_creates_no_duplicates(oai_server):
    harvest(oai_server)

    summary, _ = harvest(oai_server, from_date=date(2000, 1, 1))

    assert oai_server.list_requests()[-3]["from"] == "2000-01-01"
    assert (summary.created, summary.updated, summary.deleted, summary.unchanged) == (0, 0, 0, 5)
    assert HarvestedRecord.objects.count() == 5


def test_a_record_deleted_at_the_source_is_marked_and_keeps_its_metadata(oai_server):
    harvest(oai_server)
    oai_server.delete("oai:fake.example:1", at=minutes(20))

    summary, _ = harvest(oai_server)

    assert (summary.deleted, summary.updated) == (1, 0)
    ocean = record("oai:fake.example:1")
    assert ocean.deleted
    assert (ocean.title, ocean.doi, ocean.datestamp) == ("Ocean temperatures 1990-2020", "10.5281/zenodo.111",
                                                         minutes(20))


def test_a_changed_record_is_updated_in_place(oai_server):
    harvest(oai_server)
    oai_server.add(FakeRecord("oai:fake.example:2", minutes(30), title="Soil moisture, corrected",
                              creators=["Okafor, Amina", "Nguyen, Linh"], identifiers=["doi:10.1234/soil.2"]))

    summary, _ = harvest(oai_server)

    assert (summary.updated, summary.created) == (1, 0)
    soil = record("oai:fake.example:2")
    assert (soil.title, soil.creators) == ("Soil moisture, corrected", ["Okafor, Amina", "Nguyen, Linh"])
    assert HarvestedRecord.objects.filter(oai_identifier="oai:fake.example:2").count() == 1


def test_a_datestamp_in_the_future_does_not_stop_later_harvests():
    with FakeOaiPmh([FakeRecord("oai:fake.example:f", minutes(60 * 24 * 365 * 100), title="From 2124")]) as server:
        _, source = harvest(server)

    assert source.harvested_until <= timezone.now()


def test_a_record_that_cannot_be_read_fails_alone():
    records = sample_records()[:2] + [
        FakeRecord("oai:fake.example:mods", minutes(5), oai_dc_xml='<mods xmlns="http://www.loc.gov/mods/v3"/>')]
    with FakeOaiPmh(records, page_size=10) as server:
        summary, source = harvest(server)

    assert (summary.created, summary.failed) == (2, 1)
    assert summary.failures == ["oai:fake.example:mods: expected oai_dc:dc, found <mods>"]
    assert not HarvestedRecord.objects.filter(oai_identifier="oai:fake.example:mods").exists()
    assert source.last_run_outcome.endswith("1 failed")


def test_a_harvest_failing_half_way_keeps_its_pages_and_starts_over_next_time(oai_server):
    oai_server.http_answer(500, b"<html>Internal Server Error</html>", times=1, after=2)  # Identify, page 1

    with pytest.raises(SourceUnreachable, match="failed with HTTP 500"):
        harvest(oai_server)

    source = HarvestSource.objects.get()
    assert HarvestedRecord.objects.count() == 2
    assert source.harvested_until is None
    assert source.last_run_outcome.startswith("failed: ")
    oai_server.forget_requests()

    summary, source = harvest(oai_server)

    assert "from" not in oai_server.list_requests()[0]
    assert (summary.created, summary.unchanged, summary.deleted) == (2, 2, 1)
    assert source.harvested_until == minutes(4)


def test_a_busy_source_is_asked_again_after_its_retry_after(oai_server):
    oai_server.http_answer(503, b"busy", headers={"Retry-After": "0"}, times=1, after=1)
    source = harvest_source_register(base_url=oai_server.url)

    summary = harvest_source_run(source_pk=source.pk, retries=1)

    assert summary.created == 4
    assert len(oai_server.list_requests()) == 4  # the refused first page, then three pages


def test_a_set_harvests_only_its_records_and_changing_it_starts_afresh(oai_server):
    summary, source = harvest(oai_server, set_spec="software")
    assert summary.created == 1
    assert oai_server.list_requests()[0]["set"] == "software"
    assert source.harvested_until == minutes(3)

    _, source = harvest(oai_server, set_spec="data")

    assert "from" not in oai_server.list_requests()[-3]
    assert source.set_spec == "data"
    assert HarvestedRecord.objects.count() == 5


def test_oai_datacite():
    records = [FakeRecord("oai:fake.example:dc1", minutes(0), title="ignored",
                          datacite_xml=DATACITE.format(doi="10.1234/DC.1", creator="Doe, Jane", title="Buoys")),
               FakeRecord("oai:fake.example:plain", minutes(1), title="Only Dublin Core")]
    with FakeOaiPmh(records) as server:
        summary, _ = harvest(server, metadata_prefix="oai_datacite")

    assert summary.created == 1
    buoys = record("oai:fake.example:dc1")
    assert (buoys.title, buoys.creators, buoys.doi, buoys.publication_year, buoys.resource_type) == (
        "Buoys", ["Doe, Jane"], "10.1234/dc.1", 2020, "Dataset")
    assert buoys.metadata_prefix == "oai_datacite"


def test_a_source_counting_in_days_is_asked_from_a_day():
    with FakeOaiPmh(sample_records(), granularity=DAY) as server:
        harvest(server)
        _, source = harvest(server)

        assert source.granularity == DAY
        assert server.list_requests()[-3]["from"] == "2024-03-01"  # then two pages by token


def test_no_records_match_is_nothing_new(oai_server):
    oai_server.oai_error("noRecordsMatch", "nothing here", verb="ListRecords")

    summary, source = harvest(oai_server)

    assert summary.seen == 0
    assert source.last_run_outcome == "nothing new"


@pytest.mark.parametrize(("code", "message"), [
    ("badArgument", "from has the wrong granularity"),
    ("cannotDisseminateFormat", "no such format"),
    ("badResumptionToken", "expired"),
])
def test_protocol_errors_fail_with_the_source_s_message(oai_server, code, message):
    oai_server.oai_error(code, message + "\n\x1b[31mred", verb="ListRecords")

    with pytest.raises(OaiProtocolError) as raised:
        harvest(oai_server)

    assert raised.value.oai_code == code
    assert str(raised.value) == f"{oai_server.url} answered the OAI-PMH error {code}: {message} [31mred"
    assert HarvestSource.objects.get().last_run_outcome == f"failed: {raised.value}"


@pytest.mark.parametrize(("status", "body", "headers", "error"), [
    (200, b"<html><body>Welcome</body></html>", {}, "it answered <html> instead of <OAI-PMH>"),
    (200, b"plain text, not XML", {}, "its answer is not XML"),
    (404, b"<html>Not found</html>", {}, "HTTP 404"),
    (301, b"", {"Location": "https://elsewhere.example/oai"}, "redirects (HTTP 301) to https://elsewhere.example/oai"),
])
def test_what_is_not_oai_pmh_says_so(oai_server, status, body, headers, error):
    oai_server.http_answer(status, body, headers=headers)

    with pytest.raises(NotOaiPmh, match=error.replace("(", r"\(").replace(")", r"\)")):
        harvest(oai_server)


def test_register_refuses_what_is_not_an_http_url():
    for url in ("ftp://example.org/oai", "example.org/oai", "https://example.org/oai?verb=Identify"):
        with pytest.raises(InvalidInput):
            harvest_source_register(base_url=url)
    with pytest.raises(InvalidInput, match="Unknown metadata format"):
        harvest_source_register(base_url="https://example.org/oai", metadata_prefix="marc21")
    assert not HarvestSource.objects.exists()
