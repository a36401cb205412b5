"""A complete harvest by a real OAI-PMH client (oaipmh-scythe) over HTTP, against the app on a live server."""

import pytest
from oaipmh_scythe import Scythe
from oaipmh_scythe.config import HTTPConfig
from oaipmh_scythe.exceptions import CannotDisseminateFormat, IdDoesNotExist

from repository.services.published import version_withdraw

from .conftest import oai_id

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def repository(publish, moderator, settings):
    """Nine published versions, two of them withdrawn; three per page."""
    settings.OAI_PAGE_SIZE = 3
    versions = [publish(title=f"Notebook {i}", keywords=[f"topic {i}"]) for i in range(9)]
    for version in versions[2:4]:
        version_withdraw(version=version, actor=moderator, reason="Duplicate.")
    return versions


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_complete_harvest_with_oaipmh_scythe(live_server, repository, method):
    with Scythe(f"{live_server.url}/oai", http_config=HTTPConfig(http_method=method, timeout=30)) as scythe:
        identify = scythe.identify()
        formats = [f.metadataPrefix for f in scythe.list_metadata_formats()]
        sets = [s.setSpec for s in scythe.list_sets()]
        records = list(scythe.list_records(metadata_prefix="oai_dc"))
        live = list(scythe.list_records(metadata_prefix="oai_datacite", ignore_deleted=True))
        headers = list(scythe.list_identifiers(metadata_prefix="oai_dc", set_="resource_type:ComputationalNotebook"))
        one = scythe.get_record(identifier=oai_id(repository[0]), metadata_prefix="oai_dc")
        with pytest.raises(CannotDisseminateFormat):
            list(scythe.list_records(metadata_prefix="marc21"))
        with pytest.raises(IdDoesNotExist):
            scythe.get_record(identifier=oai_id(repository[0]).replace("/v1", "/v9"))

    assert identify.deletedRecord == "persistent" and identify.granularity == "YYYY-MM-DDThh:mm:ssZ"
    assert formats == ["oai_dc", "oai_datacite"]
    assert "resource_type:ComputationalNotebook" in sets
    # Every item once, in datestamp order: the withdrawn ones last (their withdrawal is their latest change).
    expected = [oai_id(v) for v in repository[:2] + repository[4:] + repository[2:4]]
    assert [r.header.identifier for r in records] == expected
    assert [r.deleted for r in records] == [False] * 7 + [True] * 2
    assert [r.metadata["title"] for r in records[:7]] == [[f"Notebook {i}"] for i in (0, 1, 4, 5, 6, 7, 8)]
    assert [r.header.identifier for r in live] == expected[:7]
    assert [h.identifier for h in headers] == expected
    assert one.metadata["subject"] == ["topic 0"]
