"""DOIs, new versions, tombstones and citations as readers, owners and admins see them in the browser.

Versions are published with the real flow (acceptance, then the DOI sync against the embedded registrar), so the
DOIs on the pages are the ones `/doi/<doi>` resolves.
"""

import html

import pytest
from django.db.models import F
from django.test import Client
from django.urls import reverse

from repository.models import DoiOutbox, DoiState, LocalDoi, Record, Version
from repository.services.dois import doi_sync, doi_url
from repository.services.new_versions import version_new_draft
from repository.services.published import version_withdraw
from repository.services.versions import version_publish
from tests.factories import UserFactory, demo_draft

pytestmark = pytest.mark.django_db

EXPORTS = {"bibtex": "BibTeX", "ris": "RIS", "csl": "CSL-JSON", "datacite-json": "DataCite JSON",
           "datacite-xml": "DataCite XML"}


@pytest.fixture(autouse=True)
def local_registrar(settings):
    settings.DOI_PROVIDER = "local"


@pytest.fixture
def admin(db):
    return UserFactory(is_superuser=True, is_staff=True)


def sync_dois() -> None:
    """What the Celery task does after each commit, for every DOI still pending."""
    pending = DoiOutbox.objects.filter(synced_generation__lt=F("generation")).order_by("pk")
    for pk in pending.values_list("pk", flat=True):
        doi_sync(outbox_pk=pk)


def accept(version: Version, moderator) -> Version:
    Version.objects.filter(pk=version.pk).update(state=Version.State.IN_REVIEW)
    return version_publish(version=version, actor=moderator)


def publish(version: Version, moderator) -> Version:
    accept(version, moderator)
    sync_dois()
    version.refresh_from_db()
    assert version.state == Version.State.PUBLISHED
    return version


@pytest.fixture
def published(user, admin) -> Version:
    return publish(demo_draft(user, title="Thermal expansion of copper"), admin)


def landing_url(version: Version, number: int | None = None) -> str:
    if number is None:
        return reverse("repository:record_landing", kwargs={"record_id": version.record.public_id})
    return reverse("repository:version_landing", kwargs={"record_id": version.record.public_id, "number": number})


def file_url(version: Version, path: str = "thermal.ipynb") -> str:
    return reverse("repository:published_file", kwargs={"record_id": version.record.public_id,
                                                        "number": version.number, "file_path": path})


def page(response) -> str:
    return response.content.decode()


# --- The resolver ------------------------------------------------------------------------------------------

def test_the_version_and_concept_dois_resolve_to_their_landing_pages_whatever_the_case(client, published):
    version_response = client.get(reverse("repository:doi_resolve", kwargs={"doi": published.doi.upper()}))
    concept_response = client.get(doi_url(published.record.concept_doi))

    assert version_response.status_code == 302
    assert version_response["Location"].endswith(landing_url(published, 1))
    assert concept_response.status_code == 302
    assert concept_response["Location"].endswith(landing_url(published))
    assert client.get(version_response["Location"]).status_code == 200


def test_a_reserved_draft_doi_and_an_unknown_doi_are_not_registered(client, user):
    draft = demo_draft(user)
    sync_dois()
    assert LocalDoi.objects.get(doi=draft.doi).state == DoiState.DRAFT

    for doi in (draft.doi, "10.5072/nba.nothing-here"):
        response = client.get(reverse("repository:doi_resolve", kwargs={"doi": doi}))
        assert response.status_code == 404
        assert "DOI not registered" in page(response) and doi in page(response)


# --- The landing page ----------------------------------------------------------------------------------------

def test_the_landing_page_shows_the_dois_the_citation_and_the_export_formats(client, published):
    response = client.get(landing_url(published))

    assert response.status_code == 200
    text = page(response)
    record = published.record
    assert published.doi and record.concept_doi and published.doi != record.concept_doi
    assert f'href="{doi_url(published.doi)}"' in text and published.doi in text
    assert f'href="{doi_url(record.concept_doi)}"' in text and "Cite all versions" in text
    assert "Doe, J." in text and "<i>Thermal expansion of copper</i> (Version 1)" in text
    for fmt, label in EXPORTS.items():
        # Downloads with a file name (repository.web.citing), not the API's content negotiation.
        export = reverse("repository:version_export", kwargs={"record_id": record.public_id, "number": 1,
                                                              "fmt": fmt})
        assert f'href="{export}" download' in text and label in text
    bibtex = client.get(reverse("api:record_version", kwargs={"record_id": record.public_id, "number": 1}),
                        {"format": "bibtex"})
    assert bibtex.status_code == 200 and published.doi in bibtex.content.decode()


def test_titles_and_creators_are_escaped_everywhere_including_the_citation(client, user, admin):
    version = publish(demo_draft(user, title="<script>alert(1)</script>",
                                 creators=[{"name": "<img src=x onerror=alert(2)>"}]), admin)

    text = page(client.get(landing_url(version)))

    assert "<script>alert(1)" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text

    version_withdraw(version=version, actor=admin, reason="<b>bad</b> data")
    tombstone = page(client.get(landing_url(version)))
    assert "<script>alert(1)" not in tombstone and "<img src=x" not in tombstone and "<b>bad</b>" not in tombstone
    assert "&lt;b&gt;bad&lt;/b&gt; data" in tombstone


def test_all_versions_are_listed_and_the_record_page_shows_the_latest(client, user, admin, published):
    second = publish(version_new_draft(record=published.record, actor=user), admin)

    latest = page(client.get(landing_url(published)))
    earlier = page(client.get(landing_url(published, 1)))

    # What a reader sees above the list of versions (the head names every version, as JSON-LD hasPart).
    shown = latest.split('<main', 1)[1].split('id="versions-heading"')[0]
    assert second.doi in shown and published.doi not in shown
    assert 'aria-current="page">Version 2<' in latest
    assert landing_url(published, 1) in latest
    assert "This is an earlier version" in earlier and published.doi in earlier
    assert 'aria-current="page">Version 1<' in earlier and landing_url(published, 2) in earlier
    assert second.record.concept_doi in earlier  # "Cite all versions" is the same on every version


# --- New version -------------------------------------------------------------------------------------------

def test_only_owners_see_the_new_version_button(client, user, other_user, admin, published):
    new_version = reverse("repository:version_new", kwargs={"record_id": published.record.public_id})

    assert new_version not in page(client.get(landing_url(published)))
    client.force_login(other_user)
    assert new_version not in page(client.get(landing_url(published)))
    client.force_login(admin)
    assert new_version not in page(client.get(landing_url(published)))
    client.force_login(user)
    assert new_version in page(client.get(landing_url(published)))
    assert "New version" in page(client.get(landing_url(published)))


def test_new_version_creates_a_draft_with_its_own_reserved_doi(client, user, published):
    client.force_login(user)

    response = client.post(reverse("repository:version_new", kwargs={"record_id": published.record.public_id}))

    draft = published.record.versions.get(number=2)
    assert draft.state == Version.State.DRAFT and draft.doi and draft.doi != published.doi
    assert response.status_code == 302
    assert response["Location"] == reverse("repository:draft_detail", kwargs={"record_id": published.record.public_id})
    draft_page = page(client.get(response["Location"]))
    assert "Reserved DOI:" in draft_page and draft.doi in draft_page
    assert "you can write it into the notebook" in draft_page
    # Back on the landing page the owner finds the draft instead of a second "New version" button.
    landing = page(client.get(landing_url(published)))
    assert "Continue the draft of version 2" in landing and 'id="new-version"' not in landing


def test_a_second_new_version_is_refused_with_a_message_not_an_error(client, user, published):
    version_new_draft(record=published.record, actor=user)
    client.force_login(user)

    response = client.post(reverse("repository:version_new", kwargs={"record_id": published.record.public_id}),
                           follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == landing_url(published)
    assert "Version 2 is still draft; finish or discard it" in html.unescape(page(response))
    assert published.record.versions.count() == 2


def test_non_owners_cannot_start_a_new_version(client, other_user, published):
    url = reverse("repository:version_new", kwargs={"record_id": published.record.public_id})

    anonymous = client.post(url)
    client.force_login(other_user)
    refused = client.post(url, follow=True)

    assert anonymous.status_code == 302 and reverse("account_login") in anonymous["Location"]
    assert refused.status_code == 200 and "Only the owners" in page(refused)
    assert published.record.versions.count() == 1
    assert client.get(url).status_code == 405
    assert client.post(reverse("repository:version_new", kwargs={"record_id": "nope0-nope0"})).status_code == 404


def test_post_views_refuse_requests_without_the_csrf_token(user, admin, published):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.post(reverse("repository:version_new",
                                kwargs={"record_id": published.record.public_id})).status_code == 403
    browser.force_login(admin)
    assert browser.post(reverse("repository:version_withdraw", kwargs={"record_id": published.record.public_id,
                                                                       "number": 1}),
                        {"reason": "x"}).status_code == 403
    published.refresh_from_db()
    assert published.state == Version.State.PUBLISHED and published.record.versions.count() == 1


# --- Withdrawal and tombstones --------------------------------------------------------------------------------

def test_only_superusers_see_the_withdraw_form(client, user, other_user, admin, published):
    withdraw = reverse("repository:version_withdraw", kwargs={"record_id": published.record.public_id, "number": 1})

    for who in (None, user, other_user):
        if who:
            client.force_login(who)
        assert withdraw not in page(client.get(landing_url(published)))
    client.force_login(admin)
    text = page(client.get(landing_url(published)))
    assert withdraw in text and 'name="reason"' in text


def test_a_withdrawal_without_a_reason_is_refused_at_the_form(client, admin, published):
    client.force_login(admin)

    response = client.post(reverse("repository:version_withdraw",
                                   kwargs={"record_id": published.record.public_id, "number": 1}), {"reason": "  "})

    assert response.status_code == 400
    assert "Say why the version is withdrawn" in page(response) and "This field is required." in page(response)
    published.refresh_from_db()
    assert published.state == Version.State.PUBLISHED


def test_owners_cannot_withdraw(client, user, published):
    client.force_login(user)

    response = client.post(reverse("repository:version_withdraw",
                                   kwargs={"record_id": published.record.public_id, "number": 1}),
                           {"reason": "I changed my mind"}, follow=True)

    assert response.status_code == 200 and "Only an admin can withdraw" in page(response)
    published.refresh_from_db()
    assert published.state == Version.State.PUBLISHED


def test_a_withdrawn_version_is_a_tombstone_with_citation_and_reason_and_no_files(client, admin, published):
    assert client.get(file_url(published)).status_code == 200
    client.force_login(admin)

    response = client.post(reverse("repository:version_withdraw",
                                   kwargs={"record_id": published.record.public_id, "number": 1}),
                           {"reason": "The data were collected without consent."})
    sync_dois()

    assert response.status_code == 302 and response["Location"] == landing_url(published, 1)
    client.logout()
    published.refresh_from_db()
    for url in (landing_url(published, 1), landing_url(published)):  # no version left published: the latest
        tombstone = client.get(url)
        text = page(tombstone)
        assert tombstone.status_code == 410
        assert "This version was withdrawn" in text and "The data were collected without consent." in text
        assert published.withdrawn_at.strftime("%Y-%m-%d") in text
        assert "Thermal expansion of copper" in text and "Doe, Jane" in text
        assert "<i>Thermal expansion of copper</i> (Version 1)" in text and published.doi in text
        assert file_url(published) not in text and "thermal.ipynb" not in text
    assert client.get(file_url(published)).status_code == 410
    # The DOI stays registered and resolves to the tombstone.
    assert LocalDoi.objects.get(doi=published.doi).state == DoiState.REGISTERED
    resolved = client.get(reverse("repository:doi_resolve", kwargs={"doi": published.doi}))
    assert resolved.status_code == 302 and resolved["Location"].endswith(landing_url(published, 1))


def test_withdrawing_the_latest_version_shows_the_previous_one_and_marks_it_in_the_list(client, user, admin,
                                                                                       published):
    second = publish(version_new_draft(record=published.record, actor=user), admin)
    version_withdraw(version=second, actor=admin, reason="Wrong figure.")

    record_page = client.get(landing_url(published))
    tombstone = client.get(landing_url(published, 2))

    assert record_page.status_code == 200 and published.doi in page(record_page)
    assert 'state-withdrawn">withdrawn<' in page(record_page) and landing_url(published, 2) in page(record_page)
    assert tombstone.status_code == 410 and "Wrong figure." in page(tombstone)
    assert "See the latest version" in page(tombstone) and landing_url(published) in page(tombstone)
    assert client.get(file_url(second)).status_code == 410
    assert client.get(file_url(published)).status_code == 200
    assert client.get(landing_url(published, 3)).status_code == 404


def test_withdrawing_twice_says_so(client, admin, published):
    version_withdraw(version=published, actor=admin, reason="Once.")
    client.force_login(admin)

    response = client.post(reverse("repository:version_withdraw",
                                   kwargs={"record_id": published.record.public_id, "number": 1}),
                           {"reason": "Twice."}, follow=True)

    assert response.status_code == 410 and "only a published version can be withdrawn" in page(response)
    assert "Once." in page(response)


# --- Discarding drafts ---------------------------------------------------------------------------------------

def test_discarding_the_first_draft_deletes_the_record_and_its_reserved_doi(client, user):
    draft = demo_draft(user)
    sync_dois()
    client.force_login(user)
    detail = page(client.get(reverse("repository:draft_detail", kwargs={"record_id": draft.record.public_id})))
    assert "Reserved DOI:" in detail and draft.doi in detail and "Discard draft" in detail

    response = client.post(reverse("repository:draft_discard", kwargs={"record_id": draft.record.public_id}),
                           follow=True)

    assert response.redirect_chain[-1][0] == reverse("repository:my_uploads")
    assert "was discarded" in page(response) and draft.doi in page(response)
    assert not Record.objects.filter(pk=draft.record_id).exists()
    assert DoiOutbox.objects.get(doi=draft.doi).wanted_state == DoiState.DELETED
    sync_dois()
    assert LocalDoi.objects.get(doi=draft.doi).state == DoiState.DELETED
    assert client.get(reverse("repository:doi_resolve", kwargs={"doi": draft.doi})).status_code == 404


def test_discarding_a_new_version_returns_to_the_landing_page(client, user, published):
    draft = version_new_draft(record=published.record, actor=user)
    client.force_login(user)

    response = client.post(reverse("repository:draft_discard", kwargs={"record_id": published.record.public_id}))

    assert response.status_code == 302 and response["Location"] == landing_url(published)
    assert list(published.record.versions.values_list("number", flat=True)) == [1]
    assert DoiOutbox.objects.get(doi=draft.doi).wanted_state == DoiState.DELETED
    landing = page(client.get(landing_url(published)))
    assert "was discarded" in landing and 'id="new-version"' in landing


def test_only_owners_can_discard_and_only_drafts(client, user, other_user, admin):
    draft = demo_draft(user)
    url = reverse("repository:draft_discard", kwargs={"record_id": draft.record.public_id})

    client.force_login(other_user)
    assert client.post(url).status_code == 404
    accept(draft, admin)
    client.force_login(user)
    response = client.post(url, follow=True)

    assert response.status_code == 200 and "only a draft that is not in review can be discarded" in page(response)
    assert "Discard draft" not in page(response)
    assert Version.objects.filter(pk=draft.pk).exists()


# --- Publishing, and "My uploads" ----------------------------------------------------------------------------

def test_an_accepted_version_says_its_doi_is_being_registered_until_the_registrar_confirms(client, user, admin):
    version = accept(demo_draft(user, title="Waiting for DataCite"), admin)
    resolver = reverse("repository:doi_resolve", kwargs={"doi": version.doi})
    client.force_login(user)

    detail = page(client.get(reverse("repository:draft_detail", kwargs={"record_id": version.record.public_id})))
    uploads = page(client.get(reverse("repository:my_uploads")))
    landing = client.get(landing_url(version))

    assert "Accepted" in detail and "is being registered" in detail and version.doi in detail
    assert "Discard draft" not in detail and landing_url(version, 1) in detail
    assert "Accepted, DOI being registered" in uploads
    # The landing page exists before the DOI resolves to it; nothing can be started or withdrawn meanwhile.
    assert landing.status_code == 200 and "is being registered" in page(landing) and version.doi in page(landing)
    assert 'id="new-version"' not in page(landing)
    assert client.get(resolver).status_code == 404
    client.force_login(admin)
    assert 'id="withdraw"' not in page(client.get(landing_url(version)))

    sync_dois()
    client.force_login(user)
    uploads = page(client.get(reverse("repository:my_uploads")))
    landing = page(client.get(landing_url(version)))
    assert f'href="{landing_url(version)}"' in uploads and "Published" in uploads
    assert "is being registered" not in landing and 'id="new-version"' in landing
    assert client.get(resolver).status_code == 302


def test_my_uploads_links_published_withdrawn_and_new_version_drafts_to_the_right_pages(client, user, admin):
    withdrawn = publish(demo_draft(user, title="Gone"), admin)
    version_withdraw(version=withdrawn, actor=admin, reason="Gone for good.")
    with_draft = publish(demo_draft(user, title="Growing"), admin)
    version_new_draft(record=with_draft.record, actor=user)
    client.force_login(user)

    uploads = page(client.get(reverse("repository:my_uploads")))

    assert f'href="{landing_url(withdrawn, 1)}"' in uploads and "Withdrawn" in uploads
    assert reverse("repository:draft_detail", kwargs={"record_id": with_draft.record.public_id}) in uploads
    assert f'href="{landing_url(with_draft)}"' in uploads and "Public page" in uploads
