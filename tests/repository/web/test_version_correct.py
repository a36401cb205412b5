"""Correcting a published version's metadata from its landing page: what changes, what is audited and re-sent to
the registrar, and what stays as it was verified."""

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.urls import reverse

from repository.models import AuditEvent, DoiOutbox, Version
from repository.selectors import version_metadata
from repository.services.published import version_withdraw
from tests.factories import UserFactory, published_version
from tests.repository.web.helpers import SHA, deposit_post

pytestmark = pytest.mark.django_db

ORCID = "0000-0002-1825-0097"
BAD_ORCID = "0000-0002-1825-0098"  # wrong check digit
OTHER_IMAGE = "registry.example.org/group/other@sha256:" + "c" * 64


@pytest.fixture
def owner(db):
    return UserFactory()


@pytest.fixture
def version(owner):
    return published_version(owner, UserFactory(username="moderator"))


@pytest.fixture
def correct_url(version):
    return reverse("repository:version_correct", kwargs={"record_id": version.record.public_id, "number": 1})


@pytest.fixture
def landing_url(version):
    return reverse("repository:version_landing", kwargs={"record_id": version.record.public_id, "number": 1})


def correction(title="Thermal expansion of copper", reason="", creators=None, **fields) -> dict:
    """What the browser sends from the prefilled form of the demo version, with the changes asked for."""
    creators = creators if creators is not None else [{"name": "Doe, Jane"}]
    data = deposit_post({"title": title, "description": "Demo", "license": "CC-BY-4.0", **fields},
                        creators=creators)
    data["reason"] = reason
    return data


def files_of(version) -> list[tuple[str, str]]:
    return sorted(version.files.values_list("path", "blob__sha256"))


def corrections(version):
    return AuditEvent.objects.filter(version=version, action="version.correct")


def test_the_owner_sees_the_form_prefilled_with_the_current_metadata(client, owner, version, correct_url):
    client.force_login(owner)

    response = client.get(correct_url)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="Thermal expansion"' in html and 'value="Doe, Jane"' in html
    assert 'name="reason"' in html
    # What was verified is shown, not offered as an input.
    assert "start a new version to change them" in html
    assert version.container_image in html
    for frozen in ('name="container_image"', 'name="notebook_path"', 'name="comparison_tolerance"',
                   'name="resource_type"', 'name="data_references-TOTAL_FORMS"'):
        assert frozen not in html


def test_a_correction_changes_the_title_is_audited_and_resends_the_doi_metadata(client, owner, version, correct_url,
                                                                                 landing_url):
    files_before = files_of(version)
    client.force_login(owner)

    response = client.post(correct_url, correction(reason="Copper, not brass."))

    assert response.status_code == 302 and response.url == landing_url
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Corrected; the DOI metadata is being updated."]
    version.refresh_from_db()
    assert version.title == "Thermal expansion of copper"
    assert version.state == Version.State.PUBLISHED
    event = corrections(version).get()
    assert event.actor == owner
    assert event.data["reason"] == "Copper, not brass."
    assert event.data["before"]["title"] == "Thermal expansion"
    assert event.data["after"]["title"] == "Thermal expansion of copper"
    assert DoiOutbox.objects.get(version=version).is_pending
    assert files_of(version) == files_before
    assert "Thermal expansion of copper" in client.get(landing_url).content.decode()


def test_a_bad_orcid_is_shown_on_the_creator_row_and_nothing_changes(client, owner, version, correct_url):
    before = version_metadata(version)
    client.force_login(owner)

    response = client.post(correct_url, correction(creators=[{"name": "Doe, Jane", "orcid": BAD_ORCID}]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing was changed." in html
    orcid_field = html.index('name="creators-0-orcid"')
    error = html.index('id="id_creators-0-orcid_error"')
    assert orcid_field < error < html.index('name="creators-0-affiliation"')
    assert f'value="{BAD_ORCID}"' in html  # what was typed is kept, to be fixed rather than retyped
    version.refresh_from_db()
    assert version_metadata(version) == before
    assert not corrections(version).exists()
    assert not DoiOutbox.objects.get(version=version).is_pending


def test_a_crafted_post_cannot_change_what_was_verified(client, owner, version, correct_url):
    before = version_metadata(version)
    files_before = files_of(version)
    client.force_login(owner)
    data = correction(container_image=OTHER_IMAGE, notebook_path="data/measurements.csv",
                      comparison_tolerance='{"rtol": 0.5}', resource_type="Dataset")
    data.update({"data_references-TOTAL_FORMS": "1", "data_references-0-kind": "url",
                 "data_references-0-identifier": "https://data.example.org/x.csv",
                 "data_references-0-target_path": "data/x.csv", "data_references-0-sha256": SHA})

    response = client.post(correct_url, data)

    assert response.status_code == 302
    version.refresh_from_db()
    assert version.title == "Thermal expansion of copper"  # the rest of the correction applies
    after = version_metadata(version)
    for field in ("container_image", "notebook_path", "comparison_tolerance", "resource_type", "data_references"):
        assert after[field] == before[field], field
    assert files_of(version) == files_before


def test_strangers_get_404_and_anonymous_users_are_sent_to_sign_in(client, version, correct_url):
    client.force_login(UserFactory())

    assert client.get(correct_url).status_code == 404
    assert client.post(correct_url, correction()).status_code == 404

    client.logout()
    response = client.get(correct_url)
    assert response.status_code == 302 and response.url.startswith(reverse(settings.LOGIN_URL))
    version.refresh_from_db()
    assert version.title == "Thermal expansion" and not corrections(version).exists()


def test_a_superuser_may_correct_someone_elses_version(client, version, correct_url):
    admin = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(admin)

    assert client.get(correct_url).status_code == 200
    assert client.post(correct_url, correction(reason="Typo reported by a reader.")).status_code == 302
    assert corrections(version).get().actor == admin


def test_a_withdrawn_version_cannot_be_corrected(client, owner, version, correct_url, landing_url):
    version_withdraw(version=version, actor=UserFactory(is_superuser=True), reason="Wrong data.")
    client.force_login(owner)

    for response in (client.get(correct_url), client.post(correct_url, correction())):
        assert response.status_code == 302 and response.url == landing_url
        assert "withdrawn" in str(list(get_messages(response.wsgi_request))[-1])
    version.refresh_from_db()
    assert version.title == "Thermal expansion" and not corrections(version).exists()


def test_saving_the_unchanged_form_records_nothing(client, owner, version, correct_url):
    client.force_login(owner)

    response = client.post(correct_url, correction(title="Thermal expansion"))

    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Nothing was changed."]
    assert not corrections(version).exists()
    assert not DoiOutbox.objects.get(version=version).is_pending


def test_the_landing_page_links_to_the_correction_for_owners_and_admins_only(client, owner, version, correct_url,
                                                                              landing_url):
    link = f'href="{correct_url}"'
    assert link not in client.get(landing_url).content.decode()
    client.force_login(UserFactory())
    assert link not in client.get(landing_url).content.decode()
    client.force_login(owner)
    assert link in client.get(landing_url).content.decode()
    client.force_login(UserFactory(is_superuser=True))
    html = client.get(landing_url).content.decode()
    assert link in html and 'id="new-version"' not in html  # a new version is the owners' decision
