"""The web side of access: the "Request access" box on a restricted landing page, the owners' access page, share
links redeemed in a browser session (counted, noindex, no Signposting, shut by revocation) and the read-only page
of a shared draft."""

import datetime
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from repository.access.http import SESSION_KEY
from repository.access.models import AccessGrant, AccessRequest, ShareLink
from repository.access.policy import can_read_files
from repository.access.services import share_link_create, share_link_revoke
from repository.models import Version
from tests.factories import UserFactory, demo_draft, published_version, upload
from tests.repository.access.conftest import SECRET

pytestmark = pytest.mark.django_db


def _landing(version) -> str:
    return reverse("repository:version_landing", kwargs={"record_id": version.record.public_id,
                                                         "number": version.number})


def _manage(version) -> str:
    return reverse("access:manage", kwargs={"record_id": version.record.public_id})


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# The reader's box

def test_anonymous_readers_are_asked_to_sign_in(restricted):
    page = _text(Client().get(_landing(restricted)))
    assert "Sign in to request access" in page and 'id="request-access-form"' not in page
    assert f"/accounts/login/?next=%2Frecords%2F{restricted.record.public_id}" in page


def test_open_versions_show_no_access_box(owner, moderator, reader):
    version = published_version(owner, moderator)
    page = _text(_signed_in(reader).get(_landing(version)))
    assert 'id="access-box"' not in page


def test_a_signed_in_reader_requests_access_from_the_landing_page(restricted, reader, owner,
                                                                  django_capture_on_commit_callbacks):
    client = _signed_in(reader)
    page = _text(client.get(_landing(restricted)))
    assert 'id="request-access-form"' in page and "Request access" in page
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("access:request", kwargs={"record_id": restricted.record.public_id}),
                               {"message": "For my thesis on perovskites.", "next": _landing(restricted)},
                               follow=True)
    assert response.redirect_chain[-1][0] == _landing(restricted)
    page = _text(response)
    assert "Your request 1 was sent to the owners" in page and "waiting for the owners' answer" in page
    assert 'id="request-access-form"' not in page
    assert AccessRequest.objects.get().message == "For my thesis on perovskites."
    assert [m.to for m in mail.outbox] == [[owner.email]]


def test_an_empty_message_is_refused_with_a_clear_message(restricted, reader):
    response = _signed_in(reader).post(reverse("access:request", kwargs={"record_id": restricted.record.public_id}),
                                       {"message": "  "}, follow=True)
    assert "Your request was not sent: This field is required." in _text(response)
    assert not AccessRequest.objects.exists()


def test_a_request_to_another_site_returns_to_the_landing_page(restricted, reader):
    response = _signed_in(reader).post(reverse("access:request", kwargs={"record_id": restricted.record.public_id}),
                                       {"message": "Please.", "next": "https://evil.example/"})
    assert response["Location"] == reverse("repository:record_landing",
                                           kwargs={"record_id": restricted.record.public_id})


def test_the_owner_is_pointed_to_the_access_page(restricted, owner):
    page = _text(_signed_in(owner).get(_landing(restricted)))
    assert 'id="manage-access"' in page and 'id="access-owner"' in page and 'id="request-access-form"' not in page


# The owners' page

def test_the_owners_page_is_404_for_everyone_else(restricted, reader):
    assert _signed_in(reader).get(_manage(restricted)).status_code == 404
    assert _signed_in(UserFactory(is_superuser=False)).get(_manage(restricted)).status_code == 404
    assert Client().get(_manage(restricted)).status_code == 302  # to the login page
    accept = reverse("access:accept", kwargs={"record_id": restricted.record.public_id, "number": 1})
    assert _signed_in(reader).post(accept).status_code == 404


def test_the_owner_accepts_until_a_day_then_revokes(restricted, owner, reader):
    AccessRequest.objects.create(record=restricted.record, number=1, requester=reader, message="Referee 1 here.")
    client = _signed_in(owner)
    page = _text(client.get(_manage(restricted)))
    assert "Referee 1 here." in page and 'id="accept-1"' in page
    until = datetime.date.today() + datetime.timedelta(days=10)
    response = client.post(reverse("access:accept", kwargs={"record_id": restricted.record.public_id, "number": 1}),
                           {"until": until.isoformat()}, follow=True)
    page = _text(response)
    assert f"Request 1 accepted: reader may read the restricted files until {until:%Y-%m-%d}" in page
    assert "No request is waiting." in page and 'id="grants"' in page
    grant = AccessGrant.objects.get()
    assert grant.until == until and can_read_files(reader, restricted)

    again = client.post(reverse("access:accept", kwargs={"record_id": restricted.record.public_id, "number": 1}),
                        follow=True)
    assert "Request 1 was accepted already" in _text(again)

    revoke = reverse("access:grant_revoke", kwargs={"record_id": restricted.record.public_id, "grant_id": grant.pk})
    assert "reader no longer reads the restricted files" in _text(client.post(revoke, follow=True))
    assert not can_read_files(reader, restricted)


def test_the_owner_declines_and_a_past_day_is_refused(restricted, owner, reader):
    AccessRequest.objects.create(record=restricted.record, number=1, requester=reader, message="Please.")
    client = _signed_in(owner)
    kwargs = {"record_id": restricted.record.public_id, "number": 1}
    refused = client.post(reverse("access:accept", kwargs=kwargs), {"until": "2020-01-01"}, follow=True)
    assert "The day has passed" in _text(refused) and not AccessGrant.objects.exists()
    declined = client.post(reverse("access:decline", kwargs=kwargs), {"reason": "Members only."}, follow=True)
    assert "Request 1 declined" in _text(declined)
    assert AccessRequest.objects.get().state == AccessRequest.State.DECLINED


def test_a_new_share_link_is_shown_once(restricted, owner):
    client = _signed_in(owner)
    response = client.post(reverse("access:link_create", kwargs={"record_id": restricted.record.public_id}),
                           {"label": "Referee 2", "expires": ""})
    assert response.status_code == 201 and response["Cache-Control"] == "private, no-store"
    [url] = re.findall(r'value="(http[^"]+/access/share/[^"]+)"', response.content.decode())
    token = url.rsplit("/", 1)[-1]
    assert ShareLink.objects.get().label == "Referee 2"
    assert token not in client.get(_manage(restricted)).content.decode()

    refused = client.post(reverse("access:link_create", kwargs={"record_id": restricted.record.public_id}),
                          {"expires": "2020-01-01"})
    assert refused.status_code == 400 and "The day has passed" in _text(refused)
    assert ShareLink.objects.count() == 1


# Share links

def test_redeeming_a_share_link_counts_a_use_and_opens_the_restricted_version(restricted, owner):
    link, token = share_link_create(record=restricted.record, actor=owner, label="Referee")
    holder = Client()
    response = holder.get(f"/access/share/{token}")
    assert response.status_code == 302 and response["Location"] == _landing(restricted)
    assert response["X-Robots-Tag"] == "noindex" and not response.has_header("Link")
    link.refresh_from_db()
    assert link.uses == 1 and link.last_used_at is not None
    assert holder.session[SESSION_KEY] == [link.pk]
    assert Client().head(f"/access/share/{token}").status_code == 302  # a link checker's HEAD is no use
    link.refresh_from_db()
    assert link.uses == 1

    page = holder.get(_landing(restricted))
    assert page.status_code == 200
    assert page["X-Robots-Tag"] == "noindex" and not page.has_header("Link")
    text = _text(page)
    assert '<meta name="robots" content="noindex">' in text and 'rel="cite-as"' not in text
    assert 'id="access-shared"' in text
    # The restricted files it opens are kept out of indexes too.
    path = restricted.files.first().path
    download = holder.get(reverse("repository:published_file", kwargs={
        "record_id": restricted.record.public_id, "number": restricted.number, "file_path": path}))
    assert download.status_code == 200
    assert download["X-Robots-Tag"] == "noindex" and not download.has_header("Link")
    # Everyone else still gets the indexable page with its Signposting.
    public = Client().get(_landing(restricted))
    assert not public.has_header("X-Robots-Tag") and 'rel="cite-as"' in public["Link"]
    assert '<meta name="robots"' not in _text(public)


def test_a_revoked_link_no_longer_works_even_for_a_session_that_redeemed_it(restricted, owner):
    link, token = share_link_create(record=restricted.record, actor=owner)
    holder = Client()
    holder.get(f"/access/share/{token}")
    assert 'id="access-shared"' in _text(holder.get(_landing(restricted)))
    share_link_revoke(link=link, actor=owner)

    page = holder.get(_landing(restricted))
    assert 'id="access-shared"' not in _text(page) and "Sign in to request access" in _text(page)
    assert 'rel="cite-as"' in page["Link"]  # an ordinary visitor again
    again = holder.get(f"/access/share/{token}")
    assert again.status_code == 404 and "This share link does not work" in _text(again)
    assert again["X-Robots-Tag"] == "noindex"
    link.refresh_from_db()
    assert link.uses == 1


def test_an_unknown_token_gets_a_clear_404(db):
    response = Client().get("/access/share/not-a-real-token")
    assert response.status_code == 404
    assert "This share link does not work: it is unknown, was revoked, or has expired." in _text(response)


def test_a_shared_draft_is_readable_through_its_link_only(owner):
    draft = demo_draft(owner, title="Under review at J. Chem. Phys.")
    upload(draft, owner, "secret.csv", SECRET)
    link, token = share_link_create(record=draft.record, actor=owner)
    page_url = reverse("access:shared_draft", kwargs={"record_id": draft.record.public_id})
    file_url = reverse("access:shared_draft_file", kwargs={"record_id": draft.record.public_id,
                                                           "file_path": "secret.csv"})
    stranger = _signed_in(UserFactory())
    assert stranger.get(page_url).status_code == 404 and stranger.get(file_url).status_code == 404

    holder = Client()
    response = holder.get(f"/access/share/{token}")
    assert response["Location"] == page_url
    page = holder.get(page_url)
    assert page.status_code == 200 and page["X-Robots-Tag"] == "noindex"
    assert "Under review at J. Chem. Phys." in _text(page) and "secret.csv" in _text(page)
    download = holder.get(file_url)
    assert download.status_code == 200 and b"".join(download.streaming_content) == SECRET
    assert download["X-Robots-Tag"] == "noindex"

    share_link_revoke(link=link, actor=owner)
    assert holder.get(page_url).status_code == 404 and holder.get(file_url).status_code == 404


def test_a_link_to_a_draft_of_a_published_restricted_record_opens_the_restricted_version(restricted, owner):
    from repository.services.new_versions import version_new_draft

    version_new_draft(record=restricted.record, actor=owner)
    assert restricted.record.versions.filter(state=Version.State.DRAFT).exists()
    _link, token = share_link_create(record=restricted.record, actor=owner)
    holder = Client()
    assert holder.get(f"/access/share/{token}")["Location"] == _landing(restricted)
    # ...and the landing page says the draft is shared too.
    page = _text(holder.get(_landing(restricted)))
    assert 'id="shared-draft-link"' in page


def test_robots_txt_keeps_crawlers_out_of_share_links(db):
    lines = Client().get("/robots.txt").content.decode().splitlines()
    assert "Disallow: /access/" in lines and "Disallow: /records/*/access/" in lines


def test_the_owner_shares_a_draft_from_its_page(owner):
    draft = demo_draft(owner)
    client = _signed_in(owner)
    page = _text(client.get(reverse("repository:draft_detail", kwargs={"record_id": draft.record.public_id})))
    assert f'href="/records/{draft.record.public_id}/access/" id="share-draft"' in page
    response = client.post(reverse("access:link_create", kwargs={"record_id": draft.record.public_id}),
                           {"label": "Referees"})
    assert response.status_code == 201 and "and the draft" in _text(response)
