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


# --- a community that reviews corrections ----------------------------------------------------------------------

@pytest.fixture
def reviewing(community):
    community.review_corrections = True
    community.save(update_fields=["review_corrections"])
    return community


def test_in_a_community_that_reviews_corrections_an_owners_correction_waits(client, published, reviewing, author,
                                                                          review, community_moderator):
    held = correct_title(published, author, "Thermal expansion of copper", "Copper, not brass.")

    assert held.correction_held
    published.refresh_from_db()
    assert published.title == "Thermal expansion"  # nothing changed yet
    client.force_login(community_moderator)
    html = client.get(reverse("moderation:request_detail", kwargs={"request_id": review.pk})).content.decode()
    waiting = html[html.index('id="pending-corrections"'):]
    assert "author</strong> proposed" in waiting and "Copper, not brass." in waiting
    assert "<del>Thermal expansion</del><br><ins>Thermal expansion of copper</ins>" in waiting
    assert "Approve and apply" in waiting


def test_a_moderator_approves_and_the_correction_applies_with_both_names_in_the_audit(
        client, published, reviewing, author, review, community_moderator):
    from moderation.models import CorrectionRequest
    from repository.models import AuditEvent

    correct_title(published, author, "Thermal expansion of copper", "Copper, not brass.")
    correction = CorrectionRequest.objects.get()
    client.force_login(community_moderator)

    client.post(reverse("moderation:correction_decide", kwargs={"request_id": review.pk,
                                                                "correction_id": correction.pk}),
                {"decision": "approve"})

    published.refresh_from_db()
    assert published.title == "Thermal expansion of copper"
    event = AuditEvent.objects.get(version=published, action="version.correct")
    assert event.actor == author and event.data["approved_by"] == community_moderator.username
    correction.refresh_from_db()
    assert correction.state == CorrectionRequest.State.APPLIED and correction.decided_by == community_moderator


def test_a_declined_correction_changes_nothing_and_the_author_cannot_decide(client, published, reviewing, author,
                                                                          review, community_moderator):
    from moderation.models import CorrectionRequest

    correct_title(published, author, "Thermal expansion of copper", "Copper, not brass.")
    correction = CorrectionRequest.objects.get()
    url = reverse("moderation:correction_decide", kwargs={"request_id": review.pk, "correction_id": correction.pk})

    client.force_login(author)
    client.post(url, {"decision": "approve"})
    correction.refresh_from_db()
    assert correction.state == CorrectionRequest.State.PENDING

    client.force_login(community_moderator)
    client.post(url, {"decision": "decline", "comment": "Brass it was."})

    correction.refresh_from_db()
    published.refresh_from_db()
    assert correction.state == CorrectionRequest.State.DECLINED and published.title == "Thermal expansion"


def test_an_invalid_correction_is_refused_at_once_not_held(published, reviewing, author):
    from moderation.models import CorrectionRequest
    from repository.errors import InvalidInput

    metadata = {**version_metadata(published), "license": "not-a-licence"}
    with pytest.raises(InvalidInput):
        version_correct_metadata(version=published, actor=author, metadata=metadata)

    assert not CorrectionRequest.objects.exists()
    published.refresh_from_db()
    assert published.license == "CC-BY-4.0"


def test_the_api_answers_202_for_a_held_correction(published, reviewing, author):
    from rest_framework.test import APIClient

    from repository.services.tokens import token_create

    _, raw = token_create(user=author, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    metadata = {**version_metadata(published), "title": "Thermal expansion of copper", "reason": "Copper."}
    for frozen in ("container_image", "notebook_path", "comparison_tolerance", "data_references", "resource_type"):
        metadata.pop(frozen, None)

    response = client.put(f"/api/records/{published.record.public_id}/versions/1/metadata", metadata, format="json")

    assert response.status_code == 202, response.content
    assert response.json()["metadata"]["title"] == "Thermal expansion"
