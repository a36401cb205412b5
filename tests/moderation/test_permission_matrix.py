"""Who may do what to a review request, through the API and the web pages: every actor against every action.

The expected table is written out in full, so an unexpected allow or deny shows up as one failing cell.
"""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from rest_framework.test import APIClient

from moderation.models import ReviewRequest
from repository.services.tokens import token_create

pytestmark = pytest.mark.django_db

ACTORS = ["anonymous", "other_user", "author", "other_community_moderator", "community_moderator",
          "global_moderator", "admin_user"]
MODERATORS = {"community_moderator", "global_moderator", "admin_user"}
ACTIONS = ["view", "timeline", "comment", "accept", "request-changes", "decline", "cancel", "resubmit"]


def expected_status(actor: str, action: str) -> int:
    if actor == "anonymous":
        return 401
    if actor in ("other_user", "other_community_moderator"):
        return 404  # they cannot see the request at all
    if action in ("view", "timeline"):
        return 200
    if action == "comment":
        return 201
    if actor == "author":
        return {"cancel": 200, "resubmit": 409}.get(action, 403)  # resubmit only after changes were requested
    return {"cancel": 403, "resubmit": 403}.get(action, 200)


@pytest.fixture
def actors(request, author, other_user, other_community_moderator, community_moderator, global_moderator,
           admin_user):
    return {"anonymous": AnonymousUser(), "other_user": other_user, "author": author,
            "other_community_moderator": other_community_moderator, "community_moderator": community_moderator,
            "global_moderator": global_moderator, "admin_user": admin_user}


def api_client(user) -> APIClient:
    client = APIClient()
    if user.is_authenticated:
        _, raw = token_create(user=user, name="matrix")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def call_api(client: APIClient, review: ReviewRequest, action: str):
    base = f"/api/requests/{review.pk}"
    if action == "view":
        return client.get(base)
    if action == "timeline":
        return client.get(f"{base}/timeline")
    if action == "comment":
        return client.post(f"{base}/timeline", {"comment": "Looks fine."}, format="json")
    return client.post(f"{base}/actions/{action}", {"comment": "A reason."}, format="json")


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", ACTIONS)
def test_api(actors, review, actor, action):
    state_before = review.state

    response = call_api(api_client(actors[actor]), review, action)

    assert response.status_code == expected_status(actor, action), response.content
    changed = ReviewRequest.objects.get(pk=review.pk).state != state_before
    assert changed == (response.status_code == 200 and action not in ("view", "timeline"))


WEB_ACTIONS = {"accept": "accept", "request-changes": "request_changes", "decline": "decline", "cancel": "cancel",
               "resubmit": "resubmit"}


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", ACTIONS)
def test_web(actors, review, actor, action):
    client = Client()
    user = actors[actor]
    if user.is_authenticated:
        client.force_login(user)
    state_before = review.state
    page = f"/requests/{review.pk}/"

    if action in ("view", "timeline"):
        response = client.get(page)
    elif action == "comment":
        response = client.post(f"{page}comment/", {"comment": "Looks fine."})
    else:
        response = client.post(f"{page}act/", {"action": WEB_ACTIONS[action], "comment": "A reason."})

    expected = expected_status(actor, action)
    if expected == 401:
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    elif expected == 404:
        assert response.status_code == 404
    elif action in ("view", "timeline"):
        assert response.status_code == 200
    else:
        assert response.status_code == 302  # back to the request page, with a message either way
    changed = ReviewRequest.objects.get(pk=review.pk).state != state_before
    assert changed == (expected == 200 and action not in ("view", "timeline", "comment"))
