"""The site layout, the home page and the sign-in pages."""

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_home_page_for_a_visitor_offers_sign_up_and_log_in(client):
    html = client.get(reverse("repository:home")).content.decode()

    assert reverse("account_login") in html and reverse("account_signup") in html
    assert 'href="/api/docs/"' in html
    assert reverse("repository:my_uploads") not in html
    assert 'href="/static/repository/style.css"' in html


def test_navigation_for_a_signed_in_user(client, user):
    client.force_login(user)

    html = client.get(reverse("repository:home")).content.decode()

    for name in ("my_uploads", "draft_new", "tokens"):
        assert reverse(f"repository:{name}") in html
    assert f'action="{reverse("account_logout")}"' in html  # logging out is a POST
    assert user.username in html
    assert reverse("admin:index") not in html


def test_staff_see_the_admin_link(client):
    client.force_login(UserFactory(is_staff=True))

    assert reverse("admin:index") in client.get(reverse("repository:home")).content.decode()


def test_messages_are_shown(client, user):
    client.force_login(user)

    response = client.post(reverse("repository:draft_new"), {"title": "x"}, follow=True)

    assert "created" in response.content.decode()


def test_login_page_uses_the_site_layout_and_signs_in(client):
    UserFactory(username="marie")

    page = client.get(reverse("account_login"))
    response = client.post(reverse("account_login"),
                           {"login": "marie", "password": "correct horse battery staple"})

    html = page.content.decode()
    assert "nb<span>archive</span>" in html and 'name="login"' in html
    assert "Log in with" not in html  # no ORCID button until ORCID credentials are configured
    assert response.status_code == 302 and response["Location"] == reverse("repository:my_uploads")


def test_login_goes_back_to_the_page_that_asked_for_it(client):
    UserFactory(username="marie")
    target = reverse("repository:tokens")

    page = client.get(f"{reverse('account_login')}?next={target}")
    response = client.post(f"{reverse('account_login')}?next={target}",
                           {"login": "marie", "password": "correct horse battery staple", "next": target})

    assert f'value="{target}"' in page.content.decode()
    assert response["Location"] == target


def test_a_wrong_password_is_reported_on_the_form(client):
    UserFactory(username="marie")

    response = client.post(reverse("account_login"), {"login": "marie", "password": "wrong"})

    assert response.status_code == 200 and b"errorlist" in response.content


def test_orcid_button_appears_once_configured(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "orcid": {**settings.SOCIALACCOUNT_PROVIDERS["orcid"], "APPS": [{"client_id": "id", "secret": "secret"}]}
    }

    html = client.get(reverse("account_login")).content.decode()

    assert "Log in with ORCID" in html and "/accounts/orcid/login/" in html


def test_signup_page_uses_the_site_layout_and_creates_an_account(client):
    page = client.get(reverse("account_signup"))
    response = client.post(reverse("account_signup"), {
        "username": "ada", "email": "ada@example.org",
        "password1": "an unusual passphrase 42", "password2": "an unusual passphrase 42"})

    assert "nb<span>archive</span>" in page.content.decode()
    assert response.status_code == 302


def test_other_allauth_pages_use_the_site_layout(client):
    html = client.get(reverse("account_reset_password")).content.decode()

    assert "nb<span>archive</span>" in html and 'href="/static/repository/style.css"' in html


def test_not_found_page_uses_the_site_layout(client):
    response = client.get("/no/such/page/")

    assert response.status_code == 404 and b"nb<span>archive</span>" in response.content


def test_static_assets_are_shipped():
    for asset in ("repository/style.css", "repository/site.js", "repository/upload.js"):
        assert finders.find(asset), asset
