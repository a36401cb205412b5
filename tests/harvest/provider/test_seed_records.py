"""seed_records: many accepted versions in bulk, the way OAI-PMH sees them (on SQLite and PostgreSQL)."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from moderation.models import ReviewRequest
from repository.models import Creator, Record, Version

pytestmark = pytest.mark.django_db


def test_seed_records_creates_accepted_versions_in_batches(oai, settings):
    settings.OAI_PAGE_SIZE = 60
    out = io.StringIO()

    call_command("seed_records", "120", "--batch", "50", stdout=out)
    call_command("seed_records", "5", stdout=out)  # again: adds, with new record ids

    versions = Version.objects.all()
    assert versions.count() == 125 and Record.objects.count() == 125 - 12
    assert set(versions.values_list("state", flat=True)) == {"published", "withdrawn"}
    assert versions.filter(state="withdrawn").count() == 2
    assert versions.filter(public_changed_at__isnull=True).count() == 0
    assert versions.filter(number=2).count() == 12  # every tenth, within a batch
    assert not versions.annotate(n=Count("creators")).filter(n=0).exists()
    assert Creator.objects.count() == sum(i % 3 + 1 for i in range(120)) + sum(i % 3 + 1 for i in range(5))
    assert ReviewRequest.objects.filter(state="accepted", community__slug="seeded").count() == 40 + 2
    assert "seeded 100/120 versions" in out.getvalue()
    # What harvesters get of them: every item, valid (the fixture checks the schemas), across three pages.
    response = oai(verb="ListRecords", metadataPrefix="oai_datacite")
    harvested = list(response.identifiers)
    while response.token is not None and response.token.text:
        response = oai(verb="ListRecords", resumptionToken=response.token.text)
        harvested += response.identifiers
    assert len(harvested) == len(set(harvested)) == 125


def test_seed_records_refuses_nonsense():
    with pytest.raises(CommandError):
        call_command("seed_records", "0", stdout=io.StringIO())
