"""Corrections of a published version's metadata take effect at once, and every one is shown: on the record's
page to everyone, and on the request's timeline and by e-mail to the moderators who accepted the version."""

import pytest
from django.core import mail
from django.urls import reverse

from moderation.services import review_act
from repository.models import Version
from repository.selectors import version_metadata
from repository.services.published import version_correct_metadata
from tests.factories import sync_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(review, community_moderator):
    review_act(request_id=review.pk, action="accept", actor=community_moderator)
    sync_pending()
    version = Version.objects.get(pk=review.version.pk)
    assert version.state == Version.State.PUBLISHED
    return version


def correct_title(version, author, title: str, reason: str) -> Version:
    metadata = {**version_metadata(version), "title": title}
    return version_correct_metadata(version=version, actor=author, metadata=metadata, reason=reason)


def test_a_correction_applies_at_once_and_the_record_page_lists_it(client, published, author):
    correct_title(published, author, "Thermal expansion of copper", "Copper, not brass.")

    page = client.get(reverse("repository:record_landing", kwargs={"record_id": published.record.public_id}))

    html = page.content.decode()
    assert "<h1" in html and "Thermal expansion of copper" in html
    corrections = html[html.index('id="corrections"'):]
    assert "Version 1: title corrected" in corrections and "Copper, not brass." in corrections


def test_the_moderators_see_each_correction_on_the_requests_timeline(client, published, review, author,
                                                                     community_moderator):
    correct_title(published, author, "Thermal expansion of copper", "Copper, not brass.")
    client.force_login(community_moderator)

    html = client.get(reverse("moderation:request_detail", kwargs={"request_id": review.pk})).content.decode()

    timeline = html[html.index('id="timeline"'):]
    assert "author</strong> corrected the published metadata: title" in timeline
    assert "<del>Thermal expansion</del><br><ins>Thermal expansion of copper</ins>" in timeline
    assert "Copper, not brass." in timeline


def test_the_moderators_who_accepted_it_are_told_by_email(published, author, community_moderator,
                                                          django_capture_on_commit_callbacks):
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        correct_title(published, author, "Thermal expansion of copper", "Copper, not brass.")

    [message] = [m for m in mail.outbox if "Metadata corrected" in m.subject]
    assert message.to == [community_moderator.email]
    assert "title" in message.body and "Copper, not brass." in message.body


def test_an_unchanged_correction_shows_nothing(client, published, author):
    version_correct_metadata(version=published, actor=author, metadata=version_metadata(published))

    html = client.get(reverse("repository:record_landing", kwargs={"record_id": published.record.public_id}))

    assert 'id="corrections"' not in html.content.decode()
