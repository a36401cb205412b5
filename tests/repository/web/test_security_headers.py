"""Every page says what the browser may do with it: Content-Security-Policy, Referrer-Policy, Permissions-Policy.

The rendered notebook keeps its own, stricter policy (tests/moderation/test_notebook_rendering.py).
"""

import re

import pytest
from django.urls import reverse

from repository.rendering.pages import CONTENT_SECURITY_POLICY as NOTEBOOK_POLICY
from tests.factories import UserFactory, accept, demo_draft, submitted_review

pytestmark = pytest.mark.django_db


def directives(header: str) -> dict[str, set[str]]:
    parts = [part.split() for part in header.split(";") if part.strip()]
    return {name: set(values) for name, *values in parts}


@pytest.fixture
def pages(user):
    staff = UserFactory(username="staff", is_staff=True, is_superuser=True)
    draft = demo_draft(user)
    published = accept(demo_draft(user, title="Published"), staff)
    review = submitted_review(user)
    record_id = draft.record.public_id
    return {
        None: ["/", reverse("account_login"), reverse("account_signup"), reverse("api:docs"),
               reverse("repository:record_landing", kwargs={"record_id": published.record.public_id}),
               "/no-such-page/"],
        user: [reverse("repository:my_uploads"), reverse("repository:draft_new"),
               reverse("repository:draft_detail", kwargs={"record_id": record_id}),
               reverse("repository:draft_edit", kwargs={"record_id": record_id}), reverse("repository:tokens"),
               reverse("moderation:request_detail", kwargs={"request_id": review.pk})],
        staff: [reverse("moderation:queue"), "/admin/"],
    }


def test_every_page_has_a_content_security_policy_that_allows_only_this_origin(client, settings, pages):
    settings.DEBUG = False  # as served in production, where even the 404 page carries it
    for who, urls in pages.items():
        client.logout()
        if who is not None:
            client.force_login(who)
        for url in urls:
            response = client.get(url)
            assert response.status_code in (200, 404), url
            policy = directives(response["Content-Security-Policy"])
            assert policy["default-src"] == {"'self'"}, url
            assert {value for value in policy["script-src"] if not value.startswith("'nonce-")} == {"'self'"}, url
            assert "'unsafe-inline'" not in policy["style-src"] and "'unsafe-eval'" not in policy["script-src"], url
            assert policy["object-src"] == {"'none'"} and policy["base-uri"] == {"'none'"}, url
            assert policy["frame-ancestors"] == {"'none'"}, url
            assert response["Referrer-Policy"] == "same-origin", url
            assert "camera=()" in response["Permissions-Policy"] and "geolocation=()" in response["Permissions-Policy"]


def test_the_api_docs_inline_style_carries_the_nonce_of_its_policy(client):
    response = client.get(reverse("api:docs"))

    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])[1]
    page = response.content.decode()
    assert f'<style nonce="{nonce}">' in page
    assert "<script>" not in page  # the Swagger UI set-up script comes from its own URL


def test_the_rendered_notebook_keeps_its_stricter_policy(client, user):
    review = submitted_review(user)
    client.force_login(user)

    response = client.get(reverse("moderation:notebook_render", kwargs={"request_id": review.pk}))

    assert response["Content-Security-Policy"] == NOTEBOOK_POLICY
    assert "camera=()" in response["Permissions-Policy"]


def test_no_template_has_an_inline_script_style_or_event_handler(client, user, pages):
    client.force_login(user)
    for url in pages[user]:
        page = client.get(url).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/ld\+json)", page), url
        assert not re.search(r"<style\b| style=\"| on[a-z]+=\"", page), url
