"""Every error condition of OAI-PMH 2.0, each answered with HTTP 200, a valid document and the request element the
spec asks for: without attributes after badVerb and badArgument, with the arguments otherwise."""

import datetime
import time

import pytest
from django.core import signing

from harvest.provider import formats
from repository.models import Version
from tests.factories import demo_draft

from .conftest import NAMESPACE, oai_id

pytestmark = pytest.mark.django_db

ITEM = f"oai:{NAMESPACE}:abcde-12345/v1"


@pytest.mark.parametrize("query", [
    "",
    "verb=",
    "verb=Harvest",
    "verb=identify",
    "verb=Identify&verb=Identify",
    "verb=ListRecords&verb=ListIdentifiers&metadataPrefix=oai_dc",
    "metadataPrefix=oai_dc",
])
def test_bad_verb(oai, query):
    for method in ("get", "post"):
        response = oai(query=query, method=method)

        assert [code for code, _ in response.errors] == ["badVerb"]
        assert response.request.attrib == {}
        assert response.request.text == f"https://{NAMESPACE}/oai"


@pytest.mark.parametrize("query", [
    "verb=Identify&set=x",  # Identify takes no argument
    "verb=ListSets&metadataPrefix=oai_dc",
    "verb=ListMetadataFormats&metadataPrefix=oai_dc",
    f"verb=GetRecord&metadataPrefix=oai_dc&identifier={ITEM}&set=community",
    "verb=ListRecords&metadataPrefix=oai_dc&identifier=x",
    "verb=ListRecords&metadataPrefix=oai_dc&unknown=1",
    "verb=ListRecords",  # required metadataPrefix missing
    "verb=ListIdentifiers&from=2024-01-01",
    f"verb=GetRecord&identifier={ITEM}",
    "verb=GetRecord&metadataPrefix=oai_dc",
    "verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=oai_datacite",  # repeated
    "verb=ListRecords&metadataPrefix=oai_dc&set=community&set=resource_type",
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01&from=2024-01-02",
    "verb=ListRecords&metadataPrefix=oai_dc&resumptionToken=abc",  # resumptionToken is exclusive
    "verb=ListIdentifiers&resumptionToken=abc&from=2024-01-01",
    "verb=ListRecords&metadataPrefix=",
    "verb=ListRecords&metadataPrefix=oai%20dc",  # not a metadataPrefix
    "verb=ListRecords&metadataPrefix=oai_dc&set=community::x",  # not a setSpec
    "verb=ListRecords&metadataPrefix=oai_dc&set=community%3Amat%20erials",
    "verb=GetRecord&metadataPrefix=oai_dc&identifier=not%20a%20uri",
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-1-1",
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-02-30",
    "verb=ListRecords&metadataPrefix=oai_dc&until=2024-01-01T25:00:00Z",
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01T00:00:00",  # no Z
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01T00:00:00%2B01:00",  # not UTC
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01T00:00:00.5Z",  # finer than the granularity
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01T00:00Z",  # minutes are no granularity of OAI-PMH
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01&until=2024-02-01T00:00:00Z",  # granularities differ
    "verb=ListIdentifiers&metadataPrefix=oai_dc&from=2024-01-01T00:00:00Z&until=2024-02-01",
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-02-01&until=2024-01-31",  # from > until
    "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01T00:00:01Z&until=2024-01-01T00:00:00Z",
])
def test_bad_argument(oai, query):
    response = oai(query=query)

    assert [code for code, _ in response.errors] == ["badArgument"], response.errors
    assert response.request.attrib == {}


def test_from_equal_to_until_is_one_day_or_one_second_not_an_error(oai, publish):
    publish(at=datetime.datetime(2024, 1, 1, 12, 0, 0, 500000, tzinfo=datetime.UTC))

    day = oai(verb="ListIdentifiers", metadataPrefix="oai_dc", from_="2024-01-01", until="2024-01-01")
    second = oai(verb="ListIdentifiers", metadataPrefix="oai_dc", from_="2024-01-01T12:00:00Z",
                 until="2024-01-01T12:00:00Z")

    assert len(day.identifiers) == 1 and len(second.identifiers) == 1


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("verb", ["ListIdentifiers", "ListRecords"])
def test_dates_at_the_ends_of_the_calendar_are_read_not_a_server_error(oai, publish, method, verb):
    publish(at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))

    # until the last day (or second) there is: everything; from the first: everything; from the last: nothing.
    for query, found in [("until=9999-12-31", 1), ("until=9999-12-31T23:59:59Z", 1), ("from=0001-01-01", 1),
                         ("from=0001-01-01&until=9999-12-31", 1), ("from=9999-12-31", 0),
                         ("from=9999-12-31T23:59:59Z&until=9999-12-31T23:59:59Z", 0)]:
        response = oai(query=f"verb={verb}&metadataPrefix=oai_dc&{query}", method=method)

        assert len(response.identifiers) == found, (query, response.errors)
        assert [code for code, _ in response.errors] == ([] if found else ["noRecordsMatch"]), query


@pytest.fixture
def token(oai, publish, settings):
    """A real resumptionToken of ListRecords (two items, one per page)."""
    settings.OAI_PAGE_SIZE = 1
    publish(at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
    publish(at=datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC))
    return oai(verb="ListRecords", metadataPrefix="oai_dc").token.text


def test_bad_resumption_token(oai, token, monkeypatch, settings):
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    forged = signing.dumps([1, "ListRecords", "oai_dc", None, None, None, "2024-01-01T00:00:00+00:00", 1, 1, 2],
                           salt="another salt", compress=True)

    cases = {
        "garbage": oai(verb="ListRecords", resumptionToken="not-a-token"),
        "tampered": oai(verb="ListRecords", resumptionToken=tampered),
        "signed for something else": oai(verb="ListRecords", resumptionToken=forged),
        "another verb": oai(verb="ListIdentifiers", resumptionToken=token),
        "ListSets never pages": oai(verb="ListSets", resumptionToken=token),
    }
    later = time.time() + settings.OAI_TOKEN_MAX_AGE + 60
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    cases["expired"] = oai(verb="ListRecords", resumptionToken=token)

    for name, response in cases.items():
        assert [code for code, _ in response.errors] == ["badResumptionToken"], name
        assert response.request.attrib["resumptionToken"] in (token, tampered, forged, "not-a-token"), name
    assert "expired" in cases["expired"].errors[0][1]


def test_the_same_token_is_good_before_it_expires(oai, token):
    assert len(oai(verb="ListRecords", resumptionToken=token).identifiers) == 1
    assert len(oai(verb="ListRecords", resumptionToken=token).identifiers) == 1  # stateless: ask again


def test_cannot_disseminate_format(oai, publish):
    version = publish()
    without_doi = publish()
    Version.objects.filter(pk=without_doi.pk).update(doi="")

    cases = [
        oai(verb="ListRecords", metadataPrefix="marc21"),
        oai(verb="ListIdentifiers", metadataPrefix="oai_marc"),
        oai(verb="GetRecord", metadataPrefix="mods", identifier=oai_id(version)),
        oai(verb="GetRecord", metadataPrefix="oai_datacite", identifier=oai_id(without_doi)),
    ]

    for response in cases:
        assert [code for code, _ in response.errors] == ["cannotDisseminateFormat"]
        assert response.request.get("metadataPrefix") is not None  # the arguments are echoed
    assert cases[2].request.attrib == {"verb": "GetRecord", "metadataPrefix": "mods", "identifier": oai_id(version)}


def test_id_does_not_exist(oai, publish, user):
    version = publish()
    draft = demo_draft(user)  # never accepted: not an item, whatever its id
    public_id = version.record.public_id

    for identifier in (f"oai:{NAMESPACE}:abcde-12345/v1", f"oai:other.example.org:{public_id}/v1",
                       f"oai:{NAMESPACE}:{public_id}/v2", f"oai:{NAMESPACE}:{public_id}",
                       f"oai:{NAMESPACE}:{public_id}/v0",
                       f"oai:{NAMESPACE}:{draft.record.public_id}/v1", f"https://{NAMESPACE}/records/{public_id}/"):
        for response in (oai(verb="GetRecord", metadataPrefix="oai_dc", identifier=identifier),
                         oai(verb="ListMetadataFormats", identifier=identifier)):
            assert [code for code, _ in response.errors] == ["idDoesNotExist"], identifier
            assert response.request.get("identifier") == identifier


def test_no_records_match(oai, publish):
    publish(at=datetime.datetime(2024, 6, 1, tzinfo=datetime.UTC), resource_type="ComputationalNotebook")

    cases = [
        {"from_": "2024-06-02"},
        {"until": "2024-05-31"},
        {"from_": "2024-06-01T00:00:01Z"},
        {"until": "2024-05-31T23:59:59Z"},
        {"set": "resource_type:Dataset"},  # a set without items
        {"set": "community:no-such-community"},
        {"set": "community"},  # accepted without a review request: in no community
        {"set": "no-such-set"},
        {"set": "resource_type:Dataset:x"},
    ]
    for arguments in cases:
        for verb in ("ListRecords", "ListIdentifiers"):
            response = oai(verb=verb, metadataPrefix="oai_dc", **arguments)
            assert [code for code, _ in response.errors] == ["noRecordsMatch"], arguments
            assert response.request.get("verb") == verb


def test_no_records_match_when_no_item_has_the_format(oai, publish):
    version = publish()
    Version.objects.filter(pk=version.pk).update(doi="")

    assert oai(verb="ListRecords", metadataPrefix="oai_datacite").errors[0][0] == "noRecordsMatch"
    assert oai(verb="ListRecords", metadataPrefix="oai_dc").identifiers == [oai_id(version)]


def test_no_metadata_formats(oai, publish, monkeypatch):
    # Every item has oai_dc, so this answer needs a repository configured with formats some item cannot have.
    monkeypatch.setattr(formats, "FORMATS", {"oai_datacite": formats.OAI_DATACITE})
    version = publish()
    Version.objects.filter(pk=version.pk).update(doi="")

    response = oai(verb="ListMetadataFormats", identifier=oai_id(version))

    assert [code for code, _ in response.errors] == ["noMetadataFormats"]
    assert response.request.attrib == {"verb": "ListMetadataFormats", "identifier": oai_id(version)}
