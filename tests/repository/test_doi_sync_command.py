"""`manage.py doi_sync`: an operator brings DOIs up to date by hand and sees the outcome of each."""

import io

import pytest
from django.core.management import CommandError, call_command

from repository.models import DoiOutbox, LocalDoi
from tests.factories import demo_draft

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
