"""`manage.py doi_sync`: an operator brings DOIs up to date by hand and sees the outcome of each."""

import io

import pytest
from django.core.management import CommandError, call_command

from repository.models import DoiOutbox, LocalDoi
from tests.factories import demo_draft, published_version

pytestmark = pytest.mark.django_db


def test_pending_dois_are_synced_and_reported(user):
    draft = demo_draft(user)
    out = io.StringIO()

    call_command("doi_sync", stdout=out)

    assert f"{draft.doi}: synced" in out.getvalue()
    assert LocalDoi.objects.get(doi=draft.doi).state == "draft"
    assert not DoiOutbox.objects.get(doi=draft.doi).is_pending


def test_refused_dois_wait_for_refused_and_an_unknown_doi_is_a_one_line_error(user):
    draft = demo_draft(user)
    DoiOutbox.objects.filter(doi=draft.doi).update(needs_attention=True)

    call_command("doi_sync", stdout=io.StringIO())
    assert DoiOutbox.objects.get(doi=draft.doi).is_pending  # left alone until an admin says so

    call_command("doi_sync", "--refused", stdout=io.StringIO())
    assert not DoiOutbox.objects.get(doi=draft.doi).is_pending
    with pytest.raises(CommandError, match="Not a DOI of this repository: 10.5072/nope"):
        call_command("doi_sync", "10.5072/nope")


def test_all_resends_every_doi_registered_under_an_earlier_site_address(user, other_user, settings, client):
    """`make run ADDRESS=127.0.0.1:8101` after a first start on port 8000: the DOIs registered then resolve to
    port 8000 until `doi_sync --all` sends their new target."""
    settings.SITE_URL = "http://127.0.0.1:8000"
    version = published_version(user, other_user)
    dois = [version.doi, version.record.concept_doi]
    settings.SITE_URL = "http://127.0.0.1:8101"

    out = io.StringIO()
    call_command("doi_sync", "--all", stdout=out)

    for doi in dois:
        assert f"{doi}: synced" in out.getvalue()
        target = LocalDoi.objects.get(doi=doi).url
        assert target.startswith("http://127.0.0.1:8101/records/"), target
        assert client.get(f"/doi/{doi}")["Location"] == target
    again = io.StringIO()
    call_command("doi_sync", "--all", stdout=again)
    assert again.getvalue() == ""  # nothing moved since: nothing is sent
