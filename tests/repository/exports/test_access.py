"""What every export says of a version's file access, in each state (open, embargoed until a future day,
restricted), and that no export of a closed version links one of its files."""

import datetime
import json
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.utils import timezone
from lxml import etree

from repository.exports.bibtex import version_bibtex
from repository.exports.csl import version_csl_json
from repository.exports.datacite import (
    concept_datacite_metadata,
    datacite_xml,
    validate_datacite_metadata,
    version_datacite_metadata,
)
from repository.exports.dublincore import dublin_core_xml, version_dublin_core
from repository.exports.jsonld import concept_jsonld, version_jsonld
from repository.exports.ris import version_ris
from repository.exports.rocrate import crate_metadata_json
from repository.exports.signposting import link_header, linkset_json, linkset_text, version_signposts
from repository.models import FileAccess, Version
from tests.factories import add_file

DC = "{http://purl.org/dc/elements/1.1/}"
DATACITE = {"d": "http://datacite.org/schema/kernel-4"}


def in_days(days: int) -> datetime.date:
    return timezone.now().date() + datetime.timedelta(days=days)


STATES = {
    "open": {"access_files": FileAccess.OPEN},
    "embargoed": {"access_files": FileAccess.EMBARGOED, "embargo_until": in_days(60),
                  "embargo_reason": "Until the paper appears."},
    "restricted": {"access_files": FileAccess.RESTRICTED},
}
CLOSED = ("embargoed", "restricted")


@pytest.fixture
def version_in(rich_version):
    """version_in(state) -> the rich version (a notebook with a PDF too), its access set to `state`."""
    add_file(rich_version, "paper.pdf", b"%PDF-1.4 ...")

    def set_state(state: str) -> Version:
        fields = {"access_files": FileAccess.OPEN, "embargo_until": None, "embargo_reason": "", **STATES[state]}
        Version.objects.filter(pk=rich_version.pk).update(**fields)
        return Version.objects.select_related("record").get(pk=rich_version.pk)

    return set_state


def files_prefix(version: Version) -> str:
    """The beginning of every download URL of the version's files."""
    return f"/records/{version.record.public_id}/versions/{version.number}/files/"


def every_export(version: Version) -> dict[str, str]:
    """Each export of the version (and of its concept) as the text a client receives."""
    signposts = version_signposts(version)
    return {
        "datacite-json": json.dumps(version_datacite_metadata(version)),
        "datacite-xml": datacite_xml(version_datacite_metadata(version)),
        "concept-datacite": json.dumps(concept_datacite_metadata(version.record)),
        "dublin-core": dublin_core_xml(version_dublin_core(version)),
        "jsonld": json.dumps(version_jsonld(version)),
        "concept-jsonld": json.dumps(concept_jsonld(version.record)),
        "link-header": link_header(signposts),
        "linkset-json": json.dumps(linkset_json(signposts)),
        "linkset": linkset_text(signposts),
        "ro-crate": crate_metadata_json(version).decode(),
        "bibtex": version_bibtex(version),
        "ris": version_ris(version),
        "csl": json.dumps(version_csl_json(version)),
    }


@pytest.mark.parametrize("state", CLOSED)
def test_no_export_of_a_closed_version_links_its_files(version_in, state):
    version = version_in(state)
    for name, text in every_export(version).items():
        assert files_prefix(version) not in text, name
        # The crate (inside "Download all", which the route guards) names the files; nothing else does.
        assert "paper.pdf" not in text or name == "ro-crate", name


def test_the_exports_of_an_open_version_link_its_files(version_in):
    """The other side of the test above, so that it cannot pass by linking nothing at all."""
    version = version_in("open")
    exports = every_export(version)
    for name in ("jsonld", "concept-jsonld", "link-header", "linkset-json", "linkset"):
        assert files_prefix(version) + "paper.pdf" in exports[name], name


@pytest.mark.parametrize(("state", "uri", "label"), [
    ("open", "info:eu-repo/semantics/openAccess", "Open Access"),
    ("embargoed", "info:eu-repo/semantics/embargoedAccess", "Embargoed Access"),
    ("restricted", "info:eu-repo/semantics/restrictedAccess", "Restricted Access"),
])
def test_datacite_rights_list_carries_the_licence_and_the_access_right(version_in, datacite_xsd, state, uri,
                                                                        label):
    version = version_in(state)
    metadata = version_datacite_metadata(version)

    assert validate_datacite_metadata(metadata) == []
    assert [r.get("rightsIdentifier") for r in metadata["rightsList"]] == ["CC-BY-4.0", None]
    assert metadata["rightsList"][1] == {"rights": label, "rightsUri": uri}
    document = etree.fromstring(datacite_xml(metadata).encode())
    assert datacite_xsd.validate(document), datacite_xsd.error_log
    rights = document.findall("d:rightsList/d:rights", DATACITE)
    assert [(r.get("rightsURI"), r.text) for r in rights][1] == (uri, label)
    # The concept DOI's metadata says the latest version's access.
    assert concept_datacite_metadata(version.record)["rightsList"][1]["rightsUri"] == uri


def test_an_embargo_is_datacites_available_date_and_nothing_else_has_one(version_in, datacite_xsd):
    embargoed = version_in("embargoed")
    metadata = version_datacite_metadata(embargoed)
    assert {"date": in_days(60).isoformat(), "dateType": "Available"} in metadata["dates"]
    document = etree.fromstring(datacite_xml(metadata).encode())
    assert datacite_xsd.validate(document), datacite_xsd.error_log
    assert document.xpath("d:dates/d:date[@dateType='Available']/text()", namespaces=DATACITE) == [
        in_days(60).isoformat()]

    for state in ("open", "restricted"):
        dates = version_datacite_metadata(version_in(state))["dates"]
        assert "Available" not in [d["dateType"] for d in dates], state


def test_an_embargo_whose_day_has_come_reads_as_open_and_keeps_its_available_date(version_in):
    version = version_in("embargoed")
    Version.objects.filter(pk=version.pk).update(embargo_until=in_days(0))
    version.refresh_from_db()

    metadata = version_datacite_metadata(version)
    assert metadata["rightsList"][1]["rightsUri"] == "info:eu-repo/semantics/openAccess"
    assert {"date": in_days(0).isoformat(), "dateType": "Available"} in metadata["dates"]
    assert "info:eu-repo/semantics/openAccess" in version_dublin_core(version)["rights"]
    assert not any("embargoEnd" in date for date in version_dublin_core(version)["date"])
    assert version_jsonld(version)["isAccessibleForFree"] is True
    assert files_prefix(version) in link_header(version_signposts(version))


@pytest.mark.parametrize(("state", "uri"), [
    ("open", "info:eu-repo/semantics/openAccess"),
    ("embargoed", "info:eu-repo/semantics/embargoedAccess"),
    ("restricted", "info:eu-repo/semantics/restrictedAccess"),
])
def test_dublin_core_rights_carry_the_access_term_after_the_licence(version_in, state, uri):
    version = version_in(state)
    elements = version_dublin_core(version)
    assert elements["rights"] == ["https://spdx.org/licenses/CC-BY-4.0", uri]
    document = etree.fromstring(dublin_core_xml(elements).encode())
    assert [e.text for e in document.iter(f"{DC}rights")] == elements["rights"]


def test_dublin_core_dates_an_embargo_the_openaire_way(version_in):
    published = version_in("open").published_at.astimezone(datetime.UTC).date().isoformat()
    assert version_dublin_core(version_in("embargoed"))["date"] == [
        published, f"info:eu-repo/date/embargoEnd/{in_days(60).isoformat()}"]
    assert version_dublin_core(version_in("restricted"))["date"] == [published]
    assert version_dublin_core(version_in("open"))["date"] == [published]


def test_jsonld_of_an_open_version_is_free_and_lists_its_files(version_in):
    document = version_jsonld(version_in("open"))
    assert document["isAccessibleForFree"] is True
    assert document["conditionsOfAccess"].startswith("Open access")
    assert {m["name"] for m in document["associatedMedia"]} == {"analysis.ipynb", "data/table.csv", "paper.pdf"}
    assert all(m["contentUrl"].startswith(settings.SITE_URL) for m in document["associatedMedia"])


@pytest.mark.parametrize("state", CLOSED)
def test_jsonld_of_a_closed_version_is_not_free_and_offers_no_download(version_in, state):
    version = version_in(state)
    for document in (version_jsonld(version), concept_jsonld(version.record)):
        assert document["isAccessibleForFree"] is False
        assert "associatedMedia" not in document and "distribution" not in document
        assert "contentUrl" not in json.dumps(document)
        assert document["datePublished"] == "2024-05-04"  # the metadata were published all the same
    conditions = version_jsonld(version)["conditionsOfAccess"]
    if state == "embargoed":
        assert conditions.startswith("Embargoed access") and in_days(60).isoformat() in conditions
    else:
        assert conditions.startswith("Restricted access")


def test_a_closed_dataset_has_no_distribution(version_in):
    version = version_in("restricted")
    Version.objects.filter(pk=version.pk).update(resource_type="Dataset")
    version.refresh_from_db()
    assert "distribution" not in version_jsonld(version)
    Version.objects.filter(pk=version.pk).update(access_files=FileAccess.OPEN)
    version.refresh_from_db()
    assert len(version_jsonld(version)["distribution"]) == 3


@pytest.mark.parametrize("state", CLOSED)
def test_signposting_of_a_closed_version_has_no_items_but_all_else(version_in, state):
    version = version_in(state)
    signposts = version_signposts(version)
    relations = {link.rel for link in signposts.links}
    assert "item" not in relations
    assert {"cite-as", "describedby", "type", "license", "linkset", "author"} <= relations
    assert [link for link in version_signposts(version_in("open")).links if link.rel == "item"]


def test_the_ro_crate_names_files_by_their_path_only(version_in):
    """The crate travels inside "Download all" (enforced by the route); its file entities carry no URL."""
    paths = {"analysis.ipynb", "data/table.csv", "paper.pdf"}
    for state in STATES:
        crate = json.loads(crate_metadata_json(version_in(state)))
        own_files = [entity for entity in crate["@graph"] if entity["@id"] in paths]
        assert len(own_files) == 3
        assert not any("contentUrl" in entity or "url" in entity for entity in own_files)


def test_the_citation_formats_link_the_doi_not_the_files(version_in):
    version = version_in("restricted")
    assert f"https://doi.org/{version.doi}" in version_bibtex(version)
    assert f"https://doi.org/{version.doi}" in version_ris(version)
    assert version_csl_json(version)["URL"].endswith(f"/records/{version.record.public_id}/versions/1/")


def test_a_draft_links_no_files_whatever_its_access(make_version):
    draft = make_version(state=Version.State.DRAFT)
    add_file(draft, "analysis.ipynb", b"{}")
    assert "associatedMedia" not in version_jsonld(draft)
    assert "item" not in {link.rel for link in version_signposts(draft).links}


def test_the_rights_labels_cover_every_access_state():
    from repository.exports.access import RIGHTS_LABELS, access_statement

    assert set(RIGHTS_LABELS) == set(FileAccess.values)
    for state in FileAccess.values:
        statement = access_statement(SimpleNamespace(access_files=state, embargo_until=in_days(3)))
        assert statement.state == state and statement.conditions
