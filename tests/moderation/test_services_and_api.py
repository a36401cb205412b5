"""Submitting to a community, the queue, comments, limits and e-mail, as authors and moderators see them."""

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from moderation.models import ReviewEvent, ReviewRequest
from moderation.services import review_act, review_comment, review_submit
from repository.models import ExecutionRun
from repository.services.tokens import token_create
from tests.factories import demo_draft

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user, name='t')[1]}")
    return client


def test_submitting_through_the_api_opens_a_request_in_the_chosen_community(author, community, community_moderator,
                                                                          django_capture_on_commit_callbacks):
    record_id = demo_draft(author).record.public_id

    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(author).post(f"/api/records/{record_id}/draft/actions/submit",
                                           {"community": "materials"}, format="json")

    assert response.status_code == 202
    review = ReviewRequest.objects.get()
    assert review.community == community and review.state == "submitted"
    assert [m.to for m in mail.outbox] == [[community_moderator.email]]
    assert "New submission to Materials" in mail.outbox[0].subject


def test_an_unknown_community_is_400(author):
    record_id = demo_draft(author).record.public_id

    response = client_for(author).post(f"/api/records/{record_id}/draft/actions/submit", {"community": "nope"},
                                       format="json")

    assert response.status_code == 400
    assert not ReviewRequest.objects.exists()


def test_without_a_community_the_default_one_is_used(author, settings):
    review = review_submit(version=demo_draft(author), actor=author)

    assert review.community.slug == settings.MODERATION_DEFAULT_COMMUNITY


def test_the_queue_shows_moderators_their_communities_and_authors_their_own(review, author, community_moderator,
                                                                             other_community_moderator, other_user):
    def ids(user, query=""):
        return [item["id"] for item in client_for(user).get(f"/api/requests{query}").json()]

    assert ids(community_moderator) == [review.pk]
    assert ids(author) == [review.pk]
    assert ids(other_community_moderator) == [] and ids(other_user) == []
    listed = client_for(community_moderator).get("/api/requests").json()[0]
    assert listed["allowed_actions"] == ["accept", "request-changes", "decline"]
    assert listed["latest_run"]["status"] == "queued"


def test_queue_filters_by_state_community_and_verdict(review, community_moderator):
    client = client_for(community_moderator)
    ExecutionRun.objects.filter(version=review.version).update(status="finished", verdict="reproduced")

    assert len(client.get("/api/requests?verdict=reproduced").json()) == 1
    assert client.get("/api/requests?verdict=not_reproduced").json() == []
    assert client.get("/api/requests?community=biology").json() == []
    assert client.get("/api/requests?state=accepted").json() == []


def test_the_timeline_has_state_changes_comments_and_verification_results(review, author, community_moderator):
    ExecutionRun.objects.filter(version=review.version).update(status="finished", verdict="reproduced",
                                                               finished_at=timezone.now(),
                                                               message="All 2 code cells reproduced their outputs.")
    review_comment(request_id=review.pk, actor=community_moderator, comment="Please add a README.")
    review_act(request_id=review.pk, action="request_changes", actor=community_moderator, comment="See above.")

    timeline = client_for(author).get(f"/api/requests/{review.pk}/timeline").json()

    kinds = [entry["kind"] for entry in timeline]
    assert kinds[0] == "state_change" and "comment" in kinds and "verification" in kinds
    assert timeline[-1]["to_state"] == "changes_requested" and timeline[-1]["comment"] == "See above."
    assert any(entry.get("verdict") == "reproduced" for entry in timeline)


def test_authors_are_mailed_on_decisions_and_comments_but_not_about_their_own(review, author, community_moderator,
                                                                              django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        review_comment(request_id=review.pk, actor=author, comment="Ready when you are.")
    assert mail.outbox == []

    with django_capture_on_commit_callbacks(execute=True):
        review_comment(request_id=review.pk, actor=community_moderator, comment="Looking now.")
    with django_capture_on_commit_callbacks(execute=True):
        review_act(request_id=review.pk, action="accept", actor=community_moderator)

    assert [m.subject.split(":")[0] for m in mail.outbox] == ["[nbarchive] New comment", "[nbarchive] Accepted"]
    assert all(m.to == [author.email] for m in mail.outbox)


def test_an_empty_comment_is_400(review, author):
    response = client_for(author).post(f"/api/requests/{review.pk}/timeline", {"comment": " "}, format="json")

    assert response.status_code == 400
    assert ReviewEvent.objects.filter(kind="comment").count() == 0


def test_request_changes_without_a_comment_is_400_with_the_field(review, community_moderator):
    response = client_for(community_moderator).post(f"/api/requests/{review.pk}/actions/request-changes", {},
                                                    format="json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "comment"


def test_an_unknown_action_is_404(review, community_moderator):
    assert client_for(community_moderator).post(f"/api/requests/{review.pk}/actions/approve").status_code == 404


def test_too_many_open_submissions_is_429(author, settings):
    settings.MODERATION_MAX_OPEN_SUBMISSIONS = 1
    review_submit(version=demo_draft(author), actor=author)
    record_id = demo_draft(author).record.public_id

    response = client_for(author).post(f"/api/records/{record_id}/draft/actions/submit")

    assert response.status_code == 429
    assert "in review" in response.json()["detail"]
    assert ReviewRequest.objects.count() == 1


def test_too_many_submissions_in_a_day_is_429(author, community_moderator, settings):
    settings.MODERATION_MAX_SUBMISSIONS_PER_DAY = 1
    first = review_submit(version=demo_draft(author), actor=author)
    review_act(request_id=first.pk, action="cancel", actor=author)
    record_id = demo_draft(author).record.public_id

    response = client_for(author).post(f"/api/records/{record_id}/draft/actions/submit")

    assert response.status_code == 429
    assert "24 hours" in response.json()["detail"]


def test_submitting_again_while_changes_are_requested_points_to_the_open_request(review, author, community_moderator):
    review_act(request_id=review.pk, action="request_changes", actor=community_moderator, comment="Fix the title.")

    response = client_for(author).post(f"/api/records/{review.version.record.public_id}/draft/actions/submit")

    assert response.status_code == 409
    assert "resubmit it there" in response.json()["detail"]
    assert ReviewRequest.objects.count() == 1


def test_queue_filters_by_age(review, community_moderator):
    client = client_for(community_moderator)
    assert client.get("/api/requests?older_than=7").json() == []

    ReviewRequest.objects.filter(pk=review.pk).update(created=timezone.now() - timezone.timedelta(days=8))

    assert [item["id"] for item in client.get("/api/requests?older_than=7").json()] == [review.pk]
    page = Client()
    page.force_login(community_moderator)
    assert "Thermal expansion" in page.get("/requests/?older_than=7").content.decode()
    assert "Thermal expansion" not in page.get("/requests/?older_than=30").content.decode()
