"""schema.org JSON-LD of versions and concepts, as Google Dataset Search and FAIR assessment tools read it."""

import json
import re

import pytest
from django.conf import settings

from repository.exports.jsonld import concept_jsonld, jsonld_script, version_jsonld
from repository.models import Version
from tests.factories import add_creator, add_file, add_reference, add_related
from tests.repository.exports.conftest import ORCID

pytestmark = pytest.mark.django_db


def landing(version) -> str:
    return f"{settings.SITE_URL}/records/{version.record.public_id}/versions/{version.number}/"


def test_a_notebook_is_software_source_code_identified_by_its_doi(rich_version):
    document = version_jsonld(rich_version)
    doi_url = f"https://doi.org/{rich_version.doi}"

    assert document["@context"] == "https://schema.org" and document["@type"] == "SoftwareSourceCode"
    assert document["@id"] == doi_url and document["url"] == landing(rich_version)
    assert document["identifier"] == [doi_url, {"@type": "PropertyValue", "propertyID": "DOI",
                                                "value": rich_version.doi, "url": doi_url}]
    assert document["name"] == rich_version.title
    assert document["description"].startswith("We recompute the band gaps")
    assert document["version"] == "v1.2"
    assert document["datePublished"] == "2024-05-04"
    assert document["license"] == "https://spdx.org/licenses/CC-BY-4.0"
    assert document["keywords"] == ["DFT", "perovskites"]
    assert document["publisher"] == {"@type": "Organization", "name": settings.DOI_PUBLISHER}
    assert document["programmingLanguage"]["name"] == "Python"
    assert document["creativeWorkStatus"] == "Published"
    assert document["isPartOf"]["@id"] == "https://doi.org/10.5072/nba.concept1"


def test_authors_are_people_with_orcid_and_affiliation_or_organisations(rich_version):
    jane, anna, cern = version_jsonld(rich_version)["author"]

    assert jane == {"@type": "Person", "@id": f"https://orcid.org/{ORCID}", "name": "Doe, Jane",
                    "givenName": "Jane", "familyName": "Doe",
                    "affiliation": {"@type": "Organization", "name": "University of Example",
                                    "@id": "https://ror.org/02mhbdp94"}}
    assert anna == {"@type": "Person", "name": "van der Berg, Anna", "givenName": "Anna", "familyName": "van der Berg"}
    assert cern == {"@type": "Organization", "name": "CERN & Friends"}


def test_a_notebooks_files_are_associated_media_with_checksums(rich_version):
    media = version_jsonld(rich_version)["associatedMedia"]

    blobs = {f.path: f.blob for f in rich_version.files.select_related("blob")}
    assert [medium["name"] for medium in media] == ["analysis.ipynb", "data/table.csv"]
    for medium in media:
        assert medium["@type"] == "MediaObject"
        assert medium["contentUrl"] == f"{landing(rich_version)}files/{medium['name']}"
        assert medium["sha256"] == blobs[medium["name"]].sha256
        assert medium["contentSize"] == f"{blobs[medium['name']].size} B"
    assert [medium["encodingFormat"] for medium in media] == ["application/x-ipynb+json", "text/csv"]


def test_a_dataset_has_a_distribution_of_data_downloads(make_version):
    version = make_version(resource_type="Dataset")
    add_file(version, "table.csv", b"a,b\n1,2\n")

    document = version_jsonld(version)

    assert document["@type"] == "Dataset" and "programmingLanguage" not in document
    assert "associatedMedia" not in document
    (download,) = document["distribution"]
    assert download["@type"] == "DataDownload" and download["encodingFormat"] == "text/csv"
    assert download["contentUrl"].endswith("/files/table.csv") and len(download["sha256"]) == 64


def test_a_file_url_escapes_what_link_header_parsers_split_on(make_version):
    version = make_version()
    add_file(version, "results; final, v2.csv", b"1\n")

    (medium,) = version_jsonld(version)["associatedMedia"]

    assert medium["contentUrl"].endswith("/files/results%3B%20final%2C%20v2.csv")


def test_versions_link_to_their_concept_and_predecessor_and_to_what_they_use(make_version):
    first = make_version()
    second = make_version(record=first.record, number=2)
    add_related(second, "https://github.com/example/code", "URL", "IsDerivedFrom")
    add_related(second, "10.1103/PhysRevB.1.1", "DOI", "Cites")
    add_related(second, "2101.00001", "arXiv", "References")
    add_related(second, "10.1000/paper", "DOI", "IsSupplementTo")  # nothing in schema.org says it: left out
    add_reference(second, "doi", "10.5281/zenodo.1234", "data/a.csv")
    add_reference(second, "archive_query", "https://archive.example.org/api/query", "data/c.json")

    document = version_jsonld(second)

    assert document["isPartOf"]["@id"] == "https://doi.org/10.5072/nba.concept1"
    assert [ref["@id"] for ref in document["isBasedOn"]] == [
        f"https://doi.org/{first.doi}", "https://github.com/example/code", "https://doi.org/10.5281/zenodo.1234"]
    assert [ref["@id"] for ref in document["citation"]] == ["https://doi.org/10.1103/PhysRevB.1.1",
                                                             "https://arxiv.org/abs/2101.00001"]
    assert "isBasedOn" not in version_jsonld(first)  # the first version is based on nothing


def test_a_withdrawn_version_keeps_its_description_but_lists_no_files(rich_version):
    Version.objects.filter(pk=rich_version.pk).update(state=Version.State.WITHDRAWN)
    rich_version.refresh_from_db()

    document = version_jsonld(rich_version)

    assert document["creativeWorkStatus"] == "Withdrawn"
    assert document["@id"] == f"https://doi.org/{rich_version.doi}"
    assert "associatedMedia" not in document and "distribution" not in document


def test_a_version_without_a_doi_yet_is_identified_by_its_landing_page(make_version):
    version = make_version(state=Version.State.PUBLISHING, doi="")

    document = version_jsonld(version)

    assert document["@id"] == landing(version) and "identifier" not in document


def test_the_concept_is_its_latest_version_under_the_concept_doi_with_every_version_as_a_part(make_version):
    first = make_version(title="First take")
    second = make_version(record=first.record, number=2, title="Second take", resource_type="Dataset")
    add_creator(second, "Doe, Jane", orcid=ORCID)
    add_file(second, "table.csv", b"x\n")
    make_version(record=first.record, number=3, state=Version.State.DRAFT, title="Unpublished")

    document = concept_jsonld(first.record)

    assert document["@id"] == "https://doi.org/10.5072/nba.concept1"
    assert document["url"] == f"{settings.SITE_URL}/records/{first.record.public_id}/"
    assert document["@type"] == "Dataset" and document["name"] == "Second take"
    assert "version" not in document and "isPartOf" not in document
    assert [part["@id"] for part in document["hasPart"]] == [f"https://doi.org/{second.doi}",
                                                             f"https://doi.org/{first.doi}"]
    assert [part["version"] for part in document["hasPart"]] == ["2", "1"]
    assert document["author"][0]["@id"] == f"https://orcid.org/{ORCID}"
    assert [download["name"] for download in document["distribution"]] == ["table.csv"]


def test_a_concept_whose_latest_version_was_withdrawn_is_described_by_the_one_before(make_version):
    first = make_version(title="Still here")
    make_version(record=first.record, number=2, state=Version.State.WITHDRAWN, title="Gone")
    add_file(first, "kept.csv", b"1\n")

    document = concept_jsonld(first.record)

    assert document["name"] == "Still here" and document["creativeWorkStatus"] == "Published"
    assert [part["creativeWorkStatus"] for part in document["hasPart"]] == ["Withdrawn", "Published"]
    assert [m["name"] for m in document["associatedMedia"]] == ["kept.csv"]


def test_a_concept_without_an_accepted_version_cannot_be_described(make_version):
    draft = make_version(state=Version.State.DRAFT)

    with pytest.raises(ValueError, match="no accepted version"):
        concept_jsonld(draft.record)


def test_the_script_element_cannot_be_closed_or_commented_by_user_text(make_version):
    hostile = """</script><script>alert("x")</script><!-- & 'quotes' \u2028"""
    version = make_version(title=hostile, description=hostile, keywords=[hostile])

    script = str(jsonld_script(version_jsonld(version)))

    body = re.fullmatch(r'<script type="application/ld\+json">(.*)</script>', script, re.DOTALL)[1]
    assert "<" not in body and ">" not in body and "&" not in body
    document = json.loads(body)
    assert document["name"] == hostile and document["keywords"] == [hostile]
