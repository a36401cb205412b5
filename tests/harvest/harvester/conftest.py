"""A fake OAI-PMH repository on loopback with a few records, for the harvester tests."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes.oai_pmh import FakeOaiPmh, FakeRecord

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def sample_records() -> list[FakeRecord]:
    """Four datasets whose DOIs are written four different ways, and one record deleted at the source."""
    return [
        FakeRecord("oai:fake.example:1", minutes(0), title="Ocean temperatures 1990-2020",
                   creators=["Doe, Jane", "Roe, Richard"], dates=["2021-05-04"], types=["Dataset"], sets=["data"],
                   identifiers=["https://doi.org/10.5281/ZENODO.111", "https://fake.example/records/1"]),
        FakeRecord("oai:fake.example:2", minutes(1), title="Soil moisture retrievals", creators=["Okafor, Amina"],
                   dates=["2019"], types=["info:eu-repo/semantics/other", "Dataset"], sets=["data"],
                   identifiers=["doi:10.1234/soil.2"]),
        FakeRecord("oai:fake.example:3", minutes(2), title="Galaxy rotation curves", creators=["Tanaka, Kenji"],
                   sets=["data"], identifiers=["info:doi/10.1234/GALAXY.3"]),
        FakeRecord("oai:fake.example:4", minutes(3), title="Phonons in graphene", creators=["Nowak, Piotr"],
                   sets=["software"], identifiers=["10.1234/nb.4"]),
        FakeRecord("oai:fake.example:5", minutes(4), deleted=True, sets=["data"]),
    ]


@pytest.fixture
def oai_server():
    with FakeOaiPmh(sample_records(), page_size=2) as server:
        yield server
