"""The API tokens page: a token is shown once, stored only as a hash, and can be revoked."""

import hashlib

import pytest
from django.urls import reverse

from repository.models import AccessToken
from repository.services.tokens import token_authenticate, token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def test_creating_a_token_shows_it_once_and_stores_only_its_hash(signed_in, user):
    response = signed_in.post(reverse("repository:tokens"), {"name": "laptop"})

    assert response.status_code == 200
    raw = response.context["created"]["raw"]
    html = response.content.decode()
    assert raw.startswith("nba_") and f'value="{raw}"' in html
    assert "not shown again" in html
    token = AccessToken.objects.get(user=user)
    assert token.name == "laptop" and token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {token.token_hash, token.prefix, token.name}
    assert token_authenticate(raw) == user
    # Never again: the next visit lists the token by its prefix only.
    again = signed_in.get(reverse("repository:tokens")).content.decode()
    assert raw not in again and token.prefix in again and "laptop" in again


def test_a_token_needs_a_name(signed_in, user):
    response = signed_in.post(reverse("repository:tokens"), {"name": "  "})

    assert response.status_code == 200 and response.context["form"].errors["name"]
    assert not AccessToken.objects.filter(user=user).exists()


def test_the_list_shows_only_my_tokens(signed_in, user, other_user):
    token_create(user=user, name="mine")
    token_create(user=other_user, name="someone else's")

    html = signed_in.get(reverse("repository:tokens")).content.decode()

    assert "mine" in html and "someone else" not in html


def test_revoking_a_token_stops_it_working(signed_in, user):
    token, raw = token_create(user=user, name="ci")

    response = signed_in.post(reverse("repository:token_revoke", kwargs={"token_id": token.pk}), follow=True)

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token_authenticate(raw) is None
    html = response.content.decode()
    assert "was revoked" in html and "Revoked" in html


def test_another_users_token_cannot_be_revoked(signed_in, other_user):
    token, raw = token_create(user=other_user, name="theirs")

    response = signed_in.post(reverse("repository:token_revoke", kwargs={"token_id": token.pk}))

    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None and token_authenticate(raw) == other_user


def test_revoking_needs_a_post(signed_in, user):
    token, _ = token_create(user=user, name="ci")

    response = signed_in.get(reverse("repository:token_revoke", kwargs={"token_id": token.pk}))

    assert response.status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None
