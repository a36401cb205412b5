"""Readers see what the data a notebook uses is: the title and creators of the dataset behind a DOI, from our
own versions or from records harvested over OAI-PMH."""

import pytest
from django.utils import timezone

from harvest.models import HarvestedRecord, HarvestSource
from tests.factories import UserFactory, published_version

pytestmark = pytest.mark.django_db

SHA = "a" * 64


def test_landing_page_names_the_datasets_behind_doi_references(client, user):
    moderator = UserFactory()
    dataset = published_version(user, moderator, title="Copper lengths 1990-2020", resource_type="Dataset")
    source = HarvestSource.objects.create(base_url="https://archive.example.org/oai", repository_name="Example Archive")
    HarvestedRecord.objects.create(source=source, oai_identifier="oai:archive.example.org:7", doi="10.1234/abc",
                                   datestamp=timezone.now(), title="Band gaps <of> oxides",
                                   creators=["Curie, Marie", "Noether, Emmy"], publication_year=2021,
                                   metadata_prefix="oai_dc")
    references = [
        {"kind": "doi", "identifier": "10.1234/ABC", "target_path": "data/gaps.csv", "sha256": SHA, "size": 10},
        {"kind": "doi", "identifier": dataset.doi, "target_path": "data/lengths.csv", "sha256": SHA, "size": 10},
        {"kind": "url", "identifier": "https://data.example.org/x.csv", "target_path": "data/x.csv", "sha256": SHA,
         "size": 10},
    ]
    notebook = published_version(user, moderator, title="Uses data", data_references=references)

    page = client.get(f"/records/{notebook.record.public_id}/").content.decode()

    assert "Band gaps &lt;of&gt; oxides" in page and "Curie, Marie; Noether, Emmy (2021)" in page
    assert "Described by Example Archive" in page
    assert "Copper lengths 1990-2020" in page and "Described by this repository" in page
    assert "https://data.example.org/x.csv" in page
