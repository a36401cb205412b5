"""Reading oai_dc and DataCite metadata of harvested records, and refusing what untrusted XML must not do."""

import pytest

from harvest.harvester.metadata import MetadataUnreadable, doi_from_identifier, parse_metadata

DC = ('<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
      'xmlns:dc="http://purl.org/dc/elements/1.1/">{}</oai_dc:dc>')


@pytest.mark.parametrize(("written", "doi"), [
    ("https://doi.org/10.5281/ZENODO.111", "10.5281/zenodo.111"),
    ("http://dx.doi.org/10.1000/a%2Fb", "10.1000/a/b"),
    ("doi:10.1234/Soil.2", "10.1234/soil.2"),
    ("DOI: 10.1234/x", "10.1234/x"),
    ("info:doi/10.1234/GALAXY.3", "10.1234/galaxy.3"),
    ("10.1234/nb.4", "10.1234/nb.4"),
    ("https://example.org/10.1234/not-a-doi-url", ""),
    ("oai:zenodo.org:111", ""),
    ("10.12/too-short-prefix", ""),
    ("https://doi.org/", ""),
])
def test_doi_forms(written, doi):
    assert doi_from_identifier(written) == doi


def test_oai_dc_title_creators_doi_year_type():
    xml = DC.format(
        "<dc:title>  Ocean\n temperatures </dc:title><dc:title>Second title</dc:title>"
        "<dc:creator>Doe, Jane</dc:creator><dc:creator>Roe, Richard</dc:creator>"
        "<dc:identifier>https://fake.example/1</dc:identifier>"
        "<dc:identifier>https://doi.org/10.5281/Zenodo.111</dc:identifier>"
        "<dc:identifier>doi:10.5281/zenodo.111</dc:identifier>"
        "<dc:identifier>https://doi.org/10.5281/zenodo.110</dc:identifier>"
        "<dc:date>info:eu-repo/date/embargoEnd/2030-01-01</dc:date><dc:date>2021-05-04</dc:date>"
        "<dc:type>info:eu-repo/semantics/other</dc:type><dc:type>Dataset</dc:type>")

    metadata = parse_metadata("oai_dc", xml.encode())

    assert metadata.title == "Ocean temperatures"
    assert metadata.creators == ["Doe, Jane", "Roe, Richard"]
    assert metadata.doi == "10.5281/zenodo.111"
    # The same DOI in another spelling is not repeated; another DOI (a concept, a part) is kept as an identifier.
    assert metadata.identifiers == ["https://fake.example/1", "https://doi.org/10.5281/zenodo.110"]
    assert metadata.publication_year == 2021
    assert metadata.resource_type == "Dataset"


def test_oai_dc_without_anything_useful_is_still_a_record():
    metadata = parse_metadata("oai_dc", DC.format("").encode())
    assert (metadata.title, metadata.creators, metadata.doi, metadata.publication_year) == ("", [], "", None)


def test_other_metadata_under_oai_dc_is_unreadable():
    with pytest.raises(MetadataUnreadable, match="expected oai_dc:dc"):
        parse_metadata("oai_dc", b'<mods xmlns="http://www.loc.gov/mods/v3"/>')


DATACITE = """<resource xmlns="http://datacite.org/schema/kernel-4">
  <identifier identifierType="DOI">10.5281/ZENODO.222</identifier>
  <creators>
    <creator><creatorName nameType="Personal">Doe, Jane</creatorName></creator>
    <creator><givenName>Amina</givenName><familyName>Okafor</familyName></creator>
  </creators>
  <titles><title titleType="Subtitle">From buoys</title><title xml:lang="en">Ocean temperatures</title></titles>
  <publisher>Zenodo</publisher><publicationYear>2022</publicationYear>
  <resourceType resourceTypeGeneral="Dataset">Measurements</resourceType>
  <alternateIdentifiers>
    <alternateIdentifier alternateIdentifierType="URL">https://zenodo.org/records/222</alternateIdentifier>
  </alternateIdentifiers>
</resource>"""


def test_datacite_resource():
    metadata = parse_metadata("oai_datacite", DATACITE.encode())

    assert metadata.doi == "10.5281/zenodo.222"
    assert metadata.title == "Ocean temperatures"
    assert metadata.creators == ["Doe, Jane", "Okafor, Amina"]
    assert metadata.publication_year == 2022
    assert metadata.resource_type == "Dataset"
    assert metadata.identifiers == ["https://zenodo.org/records/222"]


def test_datacite_in_the_openaire_envelope_and_kernel_3():
    wrapped = ('<oai_datacite xmlns="http://schema.datacite.org/oai/oai-1.1/"><schemaVersion>3</schemaVersion>'
               "<payload>" + DATACITE.replace("kernel-4", "kernel-3") + "</payload></oai_datacite>")

    metadata = parse_metadata("oai_datacite", wrapped.encode())

    assert (metadata.doi, metadata.title) == ("10.5281/zenodo.222", "Ocean temperatures")


def test_no_datacite_resource_is_unreadable():
    with pytest.raises(MetadataUnreadable, match="no DataCite"):
        parse_metadata("oai_datacite", DC.format("<dc:title>x</dc:title>").encode())


def test_external_entities_are_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    xml = (f'<!DOCTYPE dc [<!ENTITY xxe SYSTEM "file://{secret}">]>'
           + DC.format("<dc:title>before &xxe; after</dc:title>"))

    metadata = parse_metadata("oai_dc", xml.encode())

    assert "TOP SECRET" not in metadata.title


def test_entity_expansion_does_not_happen():
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    xml = f'<!DOCTYPE dc [<!ENTITY l0 "lol">{laughs}]>' + DC.format("<dc:title>&l9;</dc:title>")

    # libxml2 may refuse the document outright (its amplification limit) or leave the entity unexpanded.
    try:
        metadata = parse_metadata("oai_dc", xml.encode())
    except MetadataUnreadable:
        return
    assert "lol" not in metadata.title


def test_broken_xml_is_unreadable():
    with pytest.raises(MetadataUnreadable, match="not well-formed"):
        parse_metadata("oai_dc", DC.format("<dc:title>unclosed").encode())
