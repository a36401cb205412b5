"""The harvester against nbarchive's own /oai on a live server: what another nbarchive would import from us."""

import io

import pytest
from django.core.management import call_command

from harvest.models import HarvestedRecord
from harvest.selectors import external_metadata_for_dois
from repository.services.published import version_withdraw
from tests.factories import UserFactory, published_version

pytestmark = pytest.mark.django_db(transaction=True)


def harvest(url: str, *args: str) -> str:
    out = io.StringIO()
    call_command("harvest", url, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.parametrize("prefix", ["oai_dc", "oai_datacite"])
def test_harvesting_our_own_oai_endpoint(live_server, settings, prefix):
    settings.OAI_PAGE_SIZE = 1  # every item on its own page: the resumption tokens are followed
    owner, moderator = UserFactory(), UserFactory(is_staff=True, is_superuser=True)
    thermal = published_version(owner, moderator, creators=[{"name": "Doe, Jane"}, {"name": "Roe, Richard"}])
    spectra = published_version(owner, moderator, title="Raman spectra")
    url = f"{live_server.url}/oai"

    assert "2 new, 0 updated, 0 deleted" in harvest(url, "--prefix", prefix)

    found = external_metadata_for_dois([thermal.doi.upper(), f"https://doi.org/{spectra.doi}"])
    assert found[thermal.doi.upper()].title == "Thermal expansion"
    assert found[thermal.doi.upper()].creators == ["Doe, Jane", "Roe, Richard"]
    assert found[f"https://doi.org/{spectra.doi}"].title == "Raman spectra"
    assert HarvestedRecord.objects.get(title="Raman spectra").doi == spectra.doi.lower()

    version_withdraw(version=spectra, actor=moderator, reason="Duplicate.")

    second = harvest(url, "--prefix", prefix)

    assert " since " in second and "1 deleted" in second and "0 new" in second
    gone = HarvestedRecord.objects.get(doi=spectra.doi.lower())
    assert gone.deleted and gone.title == "Raman spectra"
    assert HarvestedRecord.objects.count() == 2
