"""external_metadata_for_doi(s): what a page showing a data reference's DOI finds about the dataset."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError

from harvest.models import HarvestedRecord, HarvestSource
from harvest.selectors import external_metadata_for_doi, external_metadata_for_dois

pytestmark = pytest.mark.django_db


def harvested(source, identifier, doi, *, deleted=False, day=1, title=None):
    return HarvestedRecord.objects.create(
        source=source, oai_identifier=identifier, doi=doi, deleted=deleted, title=title or identifier,
        creators=["Doe, Jane"], datestamp=datetime(2024, 1, day, tzinfo=UTC), metadata_prefix="oai_dc")


@pytest.fixture
def sources():
    return (HarvestSource.objects.create(base_url="https://a.example/oai"),
            HarvestSource.objects.create(base_url="https://b.example/oai"))


def test_found_whatever_way_the_doi_is_written(sources):
    record = harvested(sources[0], "oai:a:1", "10.5281/zenodo.111")

    for written in ("10.5281/zenodo.111", "10.5281/ZENODO.111", "doi:10.5281/Zenodo.111",
                    "https://doi.org/10.5281/ZENODO.111"):
        assert external_metadata_for_doi(written) == record
    assert external_metadata_for_doi("10.5281/zenodo.112") is None
    assert external_metadata_for_doi("") is None


def test_bulk_lookup_is_keyed_by_the_dois_as_given_in_one_query(sources, django_assert_num_queries):
    ocean = harvested(sources[0], "oai:a:1", "10.5281/zenodo.111")
    soil = harvested(sources[1], "oai:b:2", "10.1234/soil.2")

    with django_assert_num_queries(1):
        found = external_metadata_for_dois(["10.5281/ZENODO.111", "https://doi.org/10.1234/soil.2", "10.9999/none"])
        assert found["10.5281/ZENODO.111"].source.base_url == "https://a.example/oai"

    assert found == {"10.5281/ZENODO.111": ocean, "https://doi.org/10.1234/soil.2": soil}
    assert external_metadata_for_dois([]) == {}


def test_a_live_record_wins_over_a_deleted_one_then_the_latest(sources):
    harvested(sources[0], "oai:a:1", "10.1234/x", deleted=True, day=9)
    older = harvested(sources[1], "oai:b:1", "10.1234/x", day=2)
    newer = harvested(sources[1], "oai:b:2", "10.1234/x", day=3)

    assert external_metadata_for_doi("10.1234/X") == newer
    newer.delete()
    assert external_metadata_for_doi("10.1234/X") == older


def test_a_dataset_deleted_at_its_source_is_still_named(sources):
    gone = harvested(sources[0], "oai:a:1", "10.1234/gone", deleted=True, title="Withdrawn survey")

    found = external_metadata_for_doi("10.1234/GONE")

    assert found == gone and found.deleted and found.title == "Withdrawn survey"
    assert found.url == "https://doi.org/10.1234/gone"


def test_the_database_keeps_dois_lower_case(sources):
    with pytest.raises(IntegrityError):
        harvested(sources[0], "oai:a:1", "10.1234/UPPER")
