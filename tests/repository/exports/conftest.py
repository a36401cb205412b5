"""Fixtures of versions with full citation metadata, written straight through the ORM.

Exports only read, so the tests build the rows they describe directly instead of walking the publish flow.
"""

import datetime
from pathlib import Path

import pytest
from lxml import etree

from repository.models import Version
from tests.factories import RecordFactory, VersionFactory, add_creator, add_file, add_reference, add_related

PUBLISHED_AT = datetime.datetime(2024, 5, 3, 12, 30, tzinfo=datetime.UTC)
ORCID = "0000-0002-1825-0097"

# The official XSD copies live beside the project (../shared/schemas), not inside it; a checkout without them
# skips the XML check rather than failing.
XSD_PATH = Path(__file__).resolve().parents[3].parent / "shared" / "schemas" / "datacite-4.5" / "metadata.xsd"


@pytest.fixture(scope="session")
def datacite_xsd():
    if not XSD_PATH.is_file():
        pytest.skip(f"The DataCite 4.5 XSD is not at {XSD_PATH} (the shared/schemas folder beside the project).")
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


@pytest.fixture
def make_version(db):
    """make_version(record=None, number=1, state="published", **fields) -> Version with a DOI when accepted."""

    def make(record=None, number=1, state=Version.State.PUBLISHED, **fields):
        record = record or RecordFactory(concept_doi="10.5072/nba.concept1")
        accepted = state in ("publishing", "published", "withdrawn")
        defaults = {"doi": f"10.5072/nba.{record.public_id}.v{number}" if accepted else "",
                    "published_at": PUBLISHED_AT + datetime.timedelta(days=number) if state != "draft" else None,
                    "title": f"Band gaps of perovskites, take {number}"}
        return VersionFactory(record=record, number=number, state=state, **{**defaults, **fields})

    return make


@pytest.fixture
def rich_version(make_version):
    """A published notebook with every kind of metadata a submitter can give."""
    version = make_version(
        description="We recompute the band gaps of 40 perovskites.\n\nAll figures re-run.",
        version_label="v1.2", license="CC-BY-4.0", keywords=["DFT", "perovskites"],
        funding=[{"funder_name": "European Research Council", "funder_identifier": "10.13039/501100000781",
                  "award_number": "101000000", "award_title": "Open materials"},
                 {"funder_name": "Swiss National Science Foundation", "funder_identifier": "https://ror.org/00yjd3n13"}],
        container_image="registry.example.org/group/image@sha256:" + "a" * 64, notebook_path="analysis.ipynb",
        submitted_at=PUBLISHED_AT - datetime.timedelta(days=3),
    )
    add_creator(version, "Doe, Jane", given_name="Jane", family_name="Doe", orcid=ORCID,
                affiliation="University of Example", affiliation_ror="02mhbdp94")
    add_creator(version, "van der Berg, Anna")
    add_creator(version, "CERN & Friends")
    add_related(version, "10.1103/PhysRevB.1.1", "DOI", "IsSupplementTo")
    add_related(version, "2101.00001", "arXiv", "IsSupplementTo")
    add_related(version, "https://github.com/example/code", "URL", "IsDerivedFrom")
    add_related(version, "11304/1234-abcd", "Handle", "References")
    add_reference(version, "doi", "10.5281/zenodo.1234", "data/a.csv")
    add_reference(version, "url", "https://data.example.org/b.csv", "data/b.csv")
    add_reference(version, "archive_query", "https://archive.example.org/api/query", "data/c.json",
                  query={"formula": "CaTiO3"})
    add_file(version, "analysis.ipynb", b'{"cells": []}')
    add_file(version, "data/table.csv", b"a,b\n1,2\n")
    return version
