"""DataCite 4.5 metadata of versions and of the concept DOI, checked against the official schemas."""

import pytest
from lxml import etree

from repository.exports.datacite import (
    concept_datacite_metadata,
    datacite_xml,
    validate_datacite_metadata,
    version_datacite_metadata,
)
from repository.models import Version
from tests.factories import RecordFactory, add_creator, add_file, add_reference

from .conftest import ORCID, PUBLISHED_AT

pytestmark = pytest.mark.django_db

def relations(metadata: dict) -> set[tuple[str, str]]:
    return {(r["relationType"], r["relatedIdentifier"]) for r in metadata.get("relatedIdentifiers", [])}


def test_full_metadata_is_valid_json_and_valid_xml(rich_version, datacite_xsd):
    metadata = version_datacite_metadata(rich_version)

    assert validate_datacite_metadata(metadata) == []
    document = etree.fromstring(datacite_xml(metadata).encode())
    assert datacite_xsd.validate(document), datacite_xsd.error_log


def test_characters_xml_cannot_carry_are_dropped_from_the_xml_not_the_page(rich_version, datacite_xsd):
    # A vertical tab pasted into a title is valid JSON, but no XML parser would read it back.
    rich_version.title = "Band\x0b gaps\x00 of perovskites"
    metadata = version_datacite_metadata(rich_version)

    for xml in (datacite_xml(metadata), datacite_xml(metadata, declaration=False)):
        document = etree.fromstring(xml.encode())
        assert datacite_xsd.validate(document), datacite_xsd.error_log
        ns = {"d": "http://datacite.org/schema/kernel-4"}
        assert document.findtext("d:titles/d:title", namespaces=ns) == "Band gaps of perovskites"


def test_mandatory_and_recommended_properties(rich_version, settings):
    settings.DOI_PUBLISHER = "Example Notebook Archive"
    metadata = version_datacite_metadata(rich_version)
    record_id = rich_version.record.public_id

    assert metadata["doi"] == rich_version.doi
    assert metadata["url"] == f"{settings.SITE_URL}/records/{record_id}/versions/1/"
    assert metadata["publisher"] == {"name": "Example Notebook Archive"}
    assert metadata["publicationYear"] == "2024"
    assert metadata["types"] == {"resourceTypeGeneral": "ComputationalNotebook", "resourceType": "Jupyter notebook"}
    assert metadata["titles"] == [{"title": rich_version.title}]
    assert metadata["version"] == "v1.2"
    assert metadata["subjects"] == [{"subject": "DFT"}, {"subject": "perovskites"}]
    assert {"date": "2024-05-04", "dateType": "Issued"} in metadata["dates"]
    assert metadata["rightsList"] == [{
        "rights": "CC-BY-4.0", "rightsUri": "https://spdx.org/licenses/CC-BY-4.0", "rightsIdentifier": "CC-BY-4.0",
        "rightsIdentifierScheme": "SPDX", "schemeUri": "https://spdx.org/licenses/"},
        {"rights": "Open Access", "rightsUri": "info:eu-repo/semantics/openAccess"}]
    assert metadata["descriptions"][0] == {"description": rich_version.description, "descriptionType": "Abstract"}
    assert metadata["formats"] == ["application/x-ipynb+json", "text/csv"]
    assert metadata["sizes"] == ["2 files", "21 bytes"]
    assert metadata["fundingReferences"][0] == {
        "funderName": "European Research Council", "funderIdentifier": "https://doi.org/10.13039/501100000781",
        "funderIdentifierType": "Crossref Funder ID", "awardNumber": "101000000", "awardTitle": "Open materials"}
    assert metadata["fundingReferences"][1]["funderIdentifierType"] == "ROR"
    assert metadata["schemaVersion"] == "http://datacite.org/schema/kernel-4"


def test_a_person_with_orcid_gets_a_name_identifier_and_an_organisation_stays_whole(rich_version):
    jane, anna, cern = version_datacite_metadata(rich_version)["creators"]

    assert jane == {
        "name": "Doe, Jane", "nameType": "Personal", "givenName": "Jane", "familyName": "Doe",
        "nameIdentifiers": [{"nameIdentifier": f"https://orcid.org/{ORCID}", "nameIdentifierScheme": "ORCID",
                             "schemeUri": "https://orcid.org"}],
        "affiliation": [{"name": "University of Example", "affiliationIdentifier": "https://ror.org/02mhbdp94",
                         "affiliationIdentifierScheme": "ROR", "schemeUri": "https://ror.org"}],
    }
    # "Family, Given" without the separate fields is still a person, particles kept in the family name.
    assert anna == {"name": "van der Berg, Anna", "nameType": "Personal", "givenName": "Anna",
                    "familyName": "van der Berg"}
    assert cern == {"name": "CERN & Friends", "nameType": "Organizational"}


def test_orcid_and_ror_reach_the_xml(rich_version):
    xml = datacite_xml(version_datacite_metadata(rich_version))

    assert (f'<nameIdentifier nameIdentifierScheme="ORCID" schemeURI="https://orcid.org">'
            f"https://orcid.org/{ORCID}</nameIdentifier>") in xml
    assert 'affiliationIdentifier="https://ror.org/02mhbdp94"' in xml
    assert "<creatorName nameType=\"Organizational\">CERN &amp; Friends</creatorName>" in xml


def test_own_related_identifiers_and_data_references(rich_version, make_version):
    cited = make_version(record=RecordFactory(), number=2)
    add_reference(rich_version, "repository_file", f"{cited.record.public_id}/v2/data/x.csv", "data/x.csv")
    add_reference(rich_version, "repository_file", f"{cited.record.public_id}/v2/data/y.csv", "data/y.csv")

    related = version_datacite_metadata(rich_version)["relatedIdentifiers"]

    by_identifier = {r["relatedIdentifier"]: (r["relatedIdentifierType"], r["relationType"]) for r in related}
    assert by_identifier["10.1103/PhysRevB.1.1"] == ("DOI", "IsSupplementTo")
    assert by_identifier["arXiv:2101.00001"] == ("arXiv", "IsSupplementTo")
    assert by_identifier["https://github.com/example/code"] == ("URL", "IsDerivedFrom")
    assert by_identifier["11304/1234-abcd"] == ("Handle", "References")
    assert by_identifier["10.5281/zenodo.1234"] == ("DOI", "References")
    assert by_identifier["https://data.example.org/b.csv"] == ("URL", "References")
    assert by_identifier["https://archive.example.org/api/query"] == ("URL", "References")
    # Two files of one of our versions: that version's DOI, named once.
    assert by_identifier[cited.doi] == ("DOI", "References")
    assert [r["relatedIdentifier"] for r in related].count(cited.doi) == 1


def test_three_versions_link_to_their_accepted_neighbours_and_the_concept(make_version):
    v1 = make_version(number=1)
    record = v1.record
    v2 = make_version(record=record, number=2, state=Version.State.WITHDRAWN)
    v3 = make_version(record=record, number=3)
    make_version(record=record, number=4, state=Version.State.DRAFT)  # not accepted: never linked
    concept = ("IsVersionOf", record.concept_doi)

    assert relations(version_datacite_metadata(v1)) == {concept, ("IsPreviousVersionOf", v2.doi)}
    assert relations(version_datacite_metadata(v2)) == {
        concept, ("IsNewVersionOf", v1.doi), ("IsPreviousVersionOf", v3.doi)}
    assert relations(version_datacite_metadata(v3)) == {concept, ("IsNewVersionOf", v2.doi)}


def test_a_withdrawn_version_says_when(make_version):
    version = make_version(state=Version.State.WITHDRAWN, withdrawn_at=PUBLISHED_AT.replace(year=2025))

    assert {"date": "2025-05-03", "dateType": "Withdrawn"} in version_datacite_metadata(version)["dates"]


def test_the_concept_doi_describes_the_latest_version_and_has_every_version(make_version, settings, datacite_xsd):
    v1 = make_version(number=1)
    record = v1.record
    v2 = make_version(record=record, number=2, title="Band gaps, revised")
    add_creator(v2, "Doe, Jane", given_name="Jane", family_name="Doe")
    add_file(v2, "analysis.ipynb", b'{"cells": [1]}')
    make_version(record=record, number=3, state=Version.State.WITHDRAWN, title="Withdrawn take")

    metadata = concept_datacite_metadata(record)

    assert metadata["doi"] == record.concept_doi
    assert metadata["url"] == f"{settings.SITE_URL}/records/{record.public_id}/"
    assert metadata["titles"] == [{"title": "Band gaps, revised"}]
    assert "version" not in metadata
    assert relations(metadata) == {("HasVersion", v1.doi), ("HasVersion", v2.doi),
                                   ("HasVersion", f"10.5072/nba.{record.public_id}.v3")}
    assert validate_datacite_metadata(metadata) == []
    assert datacite_xsd.validate(etree.fromstring(datacite_xml(metadata).encode())), datacite_xsd.error_log


def test_a_version_being_published_gets_this_year_and_no_issued_date(make_version):
    version = make_version(state=Version.State.PUBLISHING, published_at=None)
    add_creator(version, "Doe, Jane")

    metadata = version_datacite_metadata(version)

    assert metadata["publicationYear"] == str(version.created.year)
    assert "Issued" not in {d["dateType"] for d in metadata["dates"]}
    assert validate_datacite_metadata(metadata) == []


def test_missing_mandatory_properties_are_named(make_version):
    version = make_version(state=Version.State.DRAFT, title="")

    problems = validate_datacite_metadata(version_datacite_metadata(version))

    assert any(p.startswith("creators:") for p in problems), problems
    assert any(p.startswith("titles:") for p in problems), problems
    assert "doi" not in version_datacite_metadata(version)


def test_a_wrong_value_is_reported_with_its_place(rich_version):
    metadata = version_datacite_metadata(rich_version)
    metadata["creators"][0]["nameType"] = "Robot"

    assert validate_datacite_metadata(metadata) == [
        "creators.0.nameType: 'Robot' is not one of ['Organizational', 'Personal']"]
