"""ListRecords, ListIdentifiers and GetRecord: records in both formats, deleted records, sets, from/until and
paging by resumptionToken; every response checked against OAI-PMH.xsd (and its payload against its schema)."""

import datetime
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from moderation.models import Community
from moderation.services import review_act
from repository.models import Version
from repository.services.new_versions import version_new_draft
from repository.services.published import version_withdraw
from tests.factories import accept, demo_draft, submitted_review, sync_pending

from .conftest import NAMESPACE, NS, oai_id

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


def dc(response, element: str) -> list[str]:
    return [e.text for e in response.findall(f".//oai_dc:dc/dc:{element}")]


def test_oai_dc_record_of_a_published_version(oai, publish):
    version = publish(
        at=datetime.datetime(2024, 5, 4, 10, 11, 12, 131415, tzinfo=UTC), title="Band gaps of perovskites",
        description="We recompute the band gaps.", keywords=["DFT", "perovskites"], license="CC-BY-4.0",
        creators=[{"name": "Doe, Jane", "orcid": "0000-0002-1825-0097"}, {"name": "CERN"}])
    public_id = version.record.public_id

    response = oai(verb="GetRecord", identifier=oai_id(version), metadataPrefix="oai_dc")

    assert response.request.attrib == {"verb": "GetRecord", "identifier": oai_id(version), "metadataPrefix": "oai_dc"}
    header = response.find(".//oai:header")
    assert header.get("status") is None
    assert response.text(".//oai:header/oai:datestamp") == "2024-05-04T10:11:12Z"
    assert [e.text for e in response.findall(".//oai:header/oai:setSpec")] == ["resource_type:ComputationalNotebook"]
    assert dc(response, "title") == ["Band gaps of perovskites"]
    assert dc(response, "creator") == ["Doe, Jane", "CERN"]
    assert dc(response, "subject") == ["DFT", "perovskites"]
    assert dc(response, "description") == ["We recompute the band gaps."]
    assert dc(response, "publisher") == ["nbarchive"]
    assert dc(response, "date") == [version.published_at.astimezone(UTC).date().isoformat()]
    assert dc(response, "type") == ["Software", "ComputationalNotebook"]
    assert dc(response, "format") == ["application/x-ipynb+json", "text/csv"]
    assert dc(response, "identifier") == [f"https://doi.org/{version.doi}",
                                          f"https://{NAMESPACE}/records/{public_id}/versions/1/"]
    assert dc(response, "relation") == [f"https://doi.org/{version.record.concept_doi}"]
    assert dc(response, "rights") == ["https://spdx.org/licenses/CC-BY-4.0", "info:eu-repo/semantics/openAccess"]
    assert dc(response, "language") == []


def test_versions_relate_to_the_previous_and_next_one(oai, publish, user, moderator):
    first = publish()
    second = accept(version_new_draft(record=first.record, actor=user), moderator)
    sync_pending()
    third = accept(version_new_draft(record=first.record, actor=user), moderator)
    sync_pending()
    second.refresh_from_db(), third.refresh_from_db()
    concept = f"https://doi.org/{first.record.concept_doi}"

    middle = oai(verb="GetRecord", identifier=oai_id(second), metadataPrefix="oai_dc")
    last = oai(verb="GetRecord", identifier=oai_id(third), metadataPrefix="oai_dc")

    assert dc(middle, "relation") == [concept, f"https://doi.org/{first.doi}", f"https://doi.org/{third.doi}"]
    assert dc(last, "relation") == [concept, f"https://doi.org/{second.doi}"]


def test_oai_datacite_record_is_the_datacite_export(oai, publish):
    version = publish(title="Band gaps", keywords=["DFT"], creators=[{"name": "Doe, Jane"}])

    response = oai(verb="GetRecord", identifier=oai_id(version), metadataPrefix="oai_datacite")

    resource = response.find(".//oai:metadata/datacite:resource")
    assert resource.get("{http://www.w3.org/2001/XMLSchema-instance}schemaLocation") == (
        "http://datacite.org/schema/kernel-4 http://schema.datacite.org/meta/kernel-4.5/metadata.xsd")
    assert resource.findtext("datacite:identifier", namespaces=NS) == version.doi
    assert resource.findtext("datacite:titles/datacite:title", namespaces=NS) == "Band gaps"
    assert resource.findtext(".//datacite:creatorName", namespaces=NS) == "Doe, Jane"
    relations = {(e.get("relationType"), e.text) for e in resource.findall(".//datacite:relatedIdentifier", NS)}
    assert ("IsVersionOf", version.record.concept_doi) in relations


def test_text_with_characters_xml_cannot_carry_is_still_a_valid_record(oai, publish):
    version = publish(title="Band\x0bgaps", description="Copied from a PDF\x0c with a form feed")
    Version.objects.filter(pk=version.pk).update(title="Band\x0bgaps")

    for prefix in ("oai_dc", "oai_datacite"):
        response = oai(verb="ListRecords", metadataPrefix=prefix)
        assert len(response.identifiers) == 1  # validated by the fixture
    assert dc(oai(verb="ListRecords", metadataPrefix="oai_dc"), "title") == ["Bandgaps"]


def test_withdrawn_versions_are_deleted_records_without_metadata(oai, publish, moderator):
    kept, withdrawn = publish(), publish()
    version_withdraw(version=withdrawn, actor=moderator, reason="Duplicate of another record.")

    for prefix in ("oai_dc", "oai_datacite"):
        listed = oai(verb="ListRecords", metadataPrefix=prefix)
        headers = {h.findtext("oai:identifier",
                              namespaces=NS): h.get("status") for h in listed.findall(".//oai:header")}
        assert headers == {oai_id(kept): None, oai_id(withdrawn): "deleted"}
        assert len(listed.findall(".//oai:record/oai:metadata")) == 1
        record = oai(verb="GetRecord", identifier=oai_id(withdrawn), metadataPrefix=prefix)
        assert record.find(".//oai:header").get("status") == "deleted"
        assert record.find(".//oai:metadata") is None
    identifiers = oai(verb="ListIdentifiers", metadataPrefix="oai_dc")
    assert [h.get("status") for h in identifiers.findall(".//oai:header")] == [None, "deleted"]
    # Withdrawal is a change: the deleted record's datestamp is when it happened.
    withdrawn.refresh_from_db()
    assert identifiers.findall(".//oai:header/oai:datestamp")[1].text == (
        withdrawn.withdrawn_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_drafts_and_versions_in_review_are_not_items(oai, publish, user):
    published = publish()
    demo_draft(user)

    assert oai(verb="ListIdentifiers", metadataPrefix="oai_dc").identifiers == [oai_id(published)]


def test_sets_of_communities_and_resource_types(oai, user, moderator, no_verification_queue):
    materials = Community.objects.create(slug="materials", name="Materials")
    materials.moderators.add(moderator)
    Community.objects.create(slug="biology", name="Biology")
    notebook = _accepted_through_review(user, moderator, materials, resource_type="ComputationalNotebook")
    dataset = _accepted_through_review(user, moderator, materials, resource_type="Dataset")
    declined = submitted_review(user, materials)
    review_act(request_id=declined.pk, action="decline", actor=moderator, comment="Out of scope.")

    def listed(set_spec):
        return oai(verb="ListIdentifiers", metadataPrefix="oai_dc", set=set_spec)

    assert set(listed("community:materials").identifiers) == {oai_id(notebook), oai_id(dataset)}
    assert set(listed("community").identifiers) == {oai_id(notebook), oai_id(dataset)}
    assert listed("community:biology").errors[0][0] == "noRecordsMatch"
    assert listed("resource_type:Dataset").identifiers == [oai_id(dataset)]
    assert listed("resource_type:ComputationalNotebook").identifiers == [oai_id(notebook)]
    assert set(listed("resource_type").identifiers) == {oai_id(notebook), oai_id(dataset)}
    response = oai(verb="GetRecord", identifier=oai_id(dataset), metadataPrefix="oai_dc")
    assert [e.text for e in response.findall(".//oai:header/oai:setSpec")] == [
        "community:materials", "resource_type:Dataset"]
    assert listed("community:materials").request.get("set") == "community:materials"


@pytest.fixture
def no_verification_queue(monkeypatch):
    from repository import tasks

    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *args, **kwargs: None)


def _accepted_through_review(user, moderator, community, **metadata) -> Version:
    review = submitted_review(user, community, **metadata)
    review_act(request_id=review.pk, action="accept", actor=moderator)
    sync_pending()
    return Version.objects.get(pk=review.version_id)


def test_from_and_until_select_by_datestamp_at_both_granularities(oai, publish):
    at = {name: publish(at=moment) for name, moment in {
        "may3": datetime.datetime(2024, 5, 3, 23, 59, 59, 999999, tzinfo=UTC),
        "may4_early": datetime.datetime(2024, 5, 4, 0, 0, 0, tzinfo=UTC),
        "may4_noon": datetime.datetime(2024, 5, 4, 12, 0, 0, 400000, tzinfo=UTC),
        "may5": datetime.datetime(2024, 5, 5, 0, 0, 1, tzinfo=UTC),
    }.items()}

    def listed(**arguments):
        response = oai(verb="ListIdentifiers", metadataPrefix="oai_dc", **arguments)
        return {name for name, version in at.items() if oai_id(version) in response.identifiers}

    assert listed(from_="2024-05-04") == {"may4_early", "may4_noon", "may5"}
    assert listed(until="2024-05-04") == {"may3", "may4_early", "may4_noon"}  # the whole day
    assert listed(from_="2024-05-04", until="2024-05-04") == {"may4_early", "may4_noon"}
    # A datestamp is shown to the second; `until` that second includes it, `from` the next second excludes it.
    assert listed(until="2024-05-04T12:00:00Z") == {"may3", "may4_early", "may4_noon"}
    assert listed(from_="2024-05-04T12:00:01Z") == {"may5"}
    assert listed(from_="2024-05-03T23:59:59Z", until="2024-05-04T00:00:00Z") == {"may3", "may4_early"}
    records = oai(verb="ListRecords", metadataPrefix="oai_dc", from_="2024-05-04T12:00:00Z", until="2024-05-05")
    assert records.errors[0][0] == "badArgument"  # granularities differ
    records = oai(verb="ListRecords", metadataPrefix="oai_dc", from_="2024-05-04T12:00:00Z",
                  until="2024-05-05T00:00:01Z")
    assert records.request.attrib == {"verb": "ListRecords", "metadataPrefix": "oai_dc",
                                      "from": "2024-05-04T12:00:00Z", "until": "2024-05-05T00:00:01Z"}
    assert len(records.identifiers) == 2


@pytest.fixture
def seeded(db, moderator):
    """23 accepted versions from seed_records (second versions, a community, datestamp ties), one withdrawn."""
    call_command("seed_records", "23", "--batch", "10", "--random-seed", "7", stdout=io.StringIO())
    version_withdraw(version=Version.objects.get(number=1, title__startswith="Seeded record 3:"), actor=moderator,
                     reason="Withdrawn for the test.")
    return list(Version.objects.filter(public_changed_at__isnull=False).select_related("record")
                .order_by("public_changed_at", "id"))


@pytest.mark.parametrize("verb", ["ListRecords", "ListIdentifiers"])
def test_paging_through_a_list_with_resumption_tokens(oai, seeded, settings, verb):
    settings.OAI_PAGE_SIZE = 5

    pages = [oai(verb=verb, metadataPrefix="oai_dc")]
    while pages[-1].token is not None and pages[-1].token.text:
        pages.append(oai(verb=verb, resumptionToken=pages[-1].token.text))

    assert [len(page.identifiers) for page in pages] == [5, 5, 5, 5, 3]
    tokens = [page.token for page in pages]
    assert [t.get("cursor") for t in tokens] == ["0", "5", "10", "15", "20"]
    assert {t.get("completeListSize") for t in tokens} == {"23"}
    assert all(t.get("expirationDate") for t in tokens[:-1]) and tokens[-1].get("expirationDate") is None
    assert tokens[-1].text is None  # the last page: an empty token
    harvested = [identifier for page in pages for identifier in page.identifiers]
    assert harvested == [oai_id(v) for v in seeded]  # every item once, in datestamp order
    assert pages[1].request.attrib == {"verb": verb, "resumptionToken": pages[0].token.text}
    deleted = [h.findtext("oai:identifier", namespaces=NS) for page in pages
               for h in page.findall(".//oai:header[@status='deleted']")]
    assert deleted == [oai_id(v) for v in seeded if v.state == "withdrawn"] and len(deleted) == 1


def test_paging_keeps_the_set_and_interval_of_the_first_request(oai, seeded, settings):
    settings.OAI_PAGE_SIZE = 2
    middle = seeded[len(seeded) // 2].public_changed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = [oai_id(v) for v in seeded
                if v.resource_type == "ComputationalNotebook" and v.public_changed_at.replace(microsecond=0)
                >= datetime.datetime.strptime(middle, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)]

    response = oai(verb="ListRecords", metadataPrefix="oai_datacite", set="resource_type:ComputationalNotebook",
                   from_=middle)
    harvested = list(response.identifiers)
    while response.token is not None and response.token.text:
        response = oai(verb="ListRecords", resumptionToken=response.token.text)
        harvested += response.identifiers

    assert harvested == expected and len(expected) > 4
    assert response.token.get("completeListSize") == str(len(expected))


def test_a_list_that_fits_one_page_has_no_resumption_token(oai, seeded):
    response = oai(verb="ListRecords", metadataPrefix="oai_dc")

    assert len(response.identifiers) == 23 and response.token is None


def test_versions_changed_within_one_second_are_ordered_by_id_and_never_skipped(oai, publish, settings):
    settings.OAI_PAGE_SIZE = 2
    same = datetime.datetime(2024, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)
    versions = [publish(at=same) for _ in range(5)]

    response = oai(verb="ListIdentifiers", metadataPrefix="oai_dc")
    harvested = list(response.identifiers)
    while response.token.text:
        response = oai(verb="ListIdentifiers", resumptionToken=response.token.text)
        harvested += response.identifiers

    assert harvested == [oai_id(v) for v in sorted(versions, key=lambda v: v.pk)]


@pytest.mark.parametrize("verb, prefix", [("ListRecords", "oai_dc"), ("ListRecords", "oai_datacite"),
                                          ("ListIdentifiers", "oai_dc")])
def test_a_page_costs_the_same_few_queries_whatever_its_size(oai, seeded, settings, verb, prefix,
                                                             django_assert_max_num_queries):
    def queries(page_size: int) -> int:
        settings.OAI_PAGE_SIZE = page_size
        first = oai(verb=verb, metadataPrefix=prefix)
        with CaptureQueriesContext(connection) as captured:
            resumed = oai(verb=verb, resumptionToken=first.token.text)
        assert len(resumed.identifiers) == page_size
        return len(captured)

    small, large = queries(2), queries(10)

    assert small == large
    # The page, its count (first page only), sets, creators, files, the records' other versions; DataCite also
    # reads related identifiers and data references.
    with django_assert_max_num_queries(8 if prefix == "oai_datacite" else 6):
        oai(verb=verb, metadataPrefix=prefix)


def test_a_resumed_page_starts_at_its_position_not_at_an_offset(oai, seeded, settings):
    settings.OAI_PAGE_SIZE = 5
    first = oai(verb="ListIdentifiers", metadataPrefix="oai_dc")

    with CaptureQueriesContext(connection) as captured:
        oai(verb="ListIdentifiers", resumptionToken=first.token.text)

    page_query = next(q["sql"] for q in captured if 'FROM "repository_version"' in q["sql"])
    assert "OFFSET" not in page_query.upper()
    assert '"repository_version"."public_changed_at" >=' in page_query
