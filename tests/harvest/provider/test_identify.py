"""Identify, ListMetadataFormats and ListSets: what a harvester reads before it harvests."""

import datetime

import pytest

from moderation.models import Community

from .conftest import NAMESPACE, oai_id

pytestmark = pytest.mark.django_db


def test_identify_describes_the_repository(oai, publish):
    older = publish(at=datetime.datetime(2023, 3, 4, 5, 6, 7, 890000, tzinfo=datetime.UTC))
    publish(at=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))

    response = oai(verb="Identify")

    assert response.request.attrib == {"verb": "Identify"}
    assert response.request.text == f"https://{NAMESPACE}/oai"
    identify = response.find("oai:Identify")
    assert response.text("oai:Identify/oai:repositoryName") == "nbarchive (tests)"
    assert response.text("oai:Identify/oai:baseURL") == f"https://{NAMESPACE}/oai"
    assert response.text("oai:Identify/oai:protocolVersion") == "2.0"
    assert [e.text for e in identify.findall("oai:adminEmail", {"oai": identify.nsmap[None]})] == [
        "oai@archive.example.org", "curator@archive.example.org"]
    assert response.text("oai:Identify/oai:earliestDatestamp") == "2023-03-04T05:06:07Z"
    assert response.text("oai:Identify/oai:deletedRecord") == "persistent"
    assert response.text("oai:Identify/oai:granularity") == "YYYY-MM-DDThh:mm:ssZ"
    assert response.text(".//id:oai-identifier/id:repositoryIdentifier") == NAMESPACE
    assert response.text(".//id:oai-identifier/id:delimiter") == ":"
    assert response.text(".//id:oai-identifier/id:sampleIdentifier").startswith(f"oai:{NAMESPACE}:")
    assert oai_id(older).startswith(f"oai:{NAMESPACE}:")


def test_identify_on_an_empty_repository_still_names_an_earliest_datestamp(oai):
    response = oai(verb="Identify")

    earliest = datetime.datetime.strptime(response.text("oai:Identify/oai:earliestDatestamp"), "%Y-%m-%dT%H:%M:%SZ")
    assert abs(earliest.replace(tzinfo=datetime.UTC) - datetime.datetime.now(datetime.UTC)) < datetime.timedelta(
        minutes=1)


def test_a_host_that_is_no_domain_name_keeps_identifiers_but_no_oai_identifier_description(oai, publish, settings):
    settings.SITE_URL = "http://127.0.0.1:8000"
    version = publish()

    identify = oai(verb="Identify")
    record = oai(verb="GetRecord", identifier=f"oai:127.0.0.1:{version.record.public_id}/v1", metadataPrefix="oai_dc")

    assert identify.find(".//id:oai-identifier") is None  # the scheme wants a registered domain name
    assert record.identifiers == [f"oai:127.0.0.1:{version.record.public_id}/v1"]


def test_the_namespace_setting_wins_over_the_site_host(oai, publish, settings):
    settings.OAI_IDENTIFIER_NAMESPACE = "oai.example.net"
    version = publish()

    response = oai(verb="ListIdentifiers", metadataPrefix="oai_dc")

    assert response.identifiers == [f"oai:oai.example.net:{version.record.public_id}/v1"]
    assert oai(verb="Identify").text(".//id:oai-identifier/id:repositoryIdentifier") == "oai.example.net"


def test_post_is_answered_like_get(oai, publish):
    publish()

    by_get, by_post = oai(verb="Identify"), oai(verb="Identify", method="post")
    listed_get = oai(verb="ListRecords", metadataPrefix="oai_dc")
    listed_post = oai(verb="ListRecords", metadataPrefix="oai_dc", method="post")

    assert by_post.text("oai:Identify/oai:baseURL") == by_get.text("oai:Identify/oai:baseURL")
    assert by_post.request.attrib == {"verb": "Identify"}
    assert listed_post.identifiers == listed_get.identifiers and len(listed_get.identifiers) == 1
    assert listed_post.request.attrib == {"verb": "ListRecords", "metadataPrefix": "oai_dc"}


def test_other_http_methods_are_refused(client):
    assert client.put("/oai?verb=Identify").status_code == 405
    assert client.delete("/oai?verb=Identify").status_code == 405


def test_list_metadata_formats(oai, publish):
    version = publish()

    response = oai(verb="ListMetadataFormats")
    for_item = oai(verb="ListMetadataFormats", identifier=oai_id(version))

    formats = {e.text: (e.getnext().text, e.getnext().getnext().text)
               for e in response.findall(".//oai:metadataPrefix")}
    assert formats == {
        "oai_dc": ("http://www.openarchives.org/OAI/2.0/oai_dc.xsd", "http://www.openarchives.org/OAI/2.0/oai_dc/"),
        "oai_datacite": ("http://schema.datacite.org/meta/kernel-4.5/metadata.xsd",
                         "http://datacite.org/schema/kernel-4"),
    }
    assert [e.text for e in for_item.findall(".//oai:metadataPrefix")] == ["oai_dc", "oai_datacite"]
    assert for_item.request.attrib == {"verb": "ListMetadataFormats", "identifier": oai_id(version)}


def test_an_item_without_doi_has_no_datacite_format(oai, publish):
    version = publish()
    type(version).objects.filter(pk=version.pk).update(doi="")

    response = oai(verb="ListMetadataFormats", identifier=oai_id(version))

    assert [e.text for e in response.findall(".//oai:metadataPrefix")] == ["oai_dc"]


def test_list_sets_names_communities_and_resource_types(oai):
    Community.objects.create(slug="materials", name="Materials science")
    Community.objects.create(slug="astro-ph", name="Astrophysics")

    response = oai(verb="ListSets")

    sets = [(s.find("oai:setSpec", {"oai": s.nsmap[None]}).text, s.find("oai:setName", {"oai": s.nsmap[None]}).text)
            for s in response.findall(".//oai:set")]
    assert sets == [
        ("community", "Communities"),
        ("community:astro-ph", "Astrophysics"),
        ("community:materials", "Materials science"),
        ("resource_type", "Resource types"),
        ("resource_type:ComputationalNotebook", "Computational notebook"),
        ("resource_type:Dataset", "Dataset"),
    ]
    assert response.token is None
