"""The page of an accepted request says where the version is public now: its landing page and its DOI."""

import pytest
from django.test import Client
from django.urls import reverse

from moderation.services import review_act
from repository.models import Version
from repository.services.dois import doi_url
from tests.factories import sync_pending

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_registrar(settings):
    settings.DOI_PROVIDER = "local"


def request_page(user, review) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("moderation:request_detail", kwargs={"request_id": review.pk}))
    assert response.status_code == 200
    return response.content.decode()


def test_an_open_request_has_no_published_link(review, community_moderator):
    assert 'id="published-record"' not in request_page(community_moderator, review)


def test_the_accepted_request_links_to_the_published_version_and_its_doi(review, community_moderator, author,
                                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        review_act(request_id=review.pk, action="accept", actor=community_moderator)
    version = Version.objects.get(pk=review.version_id)
    landing = reverse("repository:version_landing", kwargs={"record_id": version.record.public_id, "number": 1})

    publishing = request_page(community_moderator, review)  # accepted, DOI not yet registered
    assert f'href="{landing}" id="published-landing"' in publishing and "resolves once registered" in publishing

    sync_pending()
    for user in (community_moderator, author):
        html = request_page(user, review)
        assert f'Published as <a href="{landing}" id="published-landing">version 1 of record' in html
        assert f'<a href="{doi_url(version.doi)}" id="published-doi" class="break">{version.doi}</a>' in html
