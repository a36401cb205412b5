"""My uploads, new upload, the draft page and file deletion, as a signed-in depositor sees them."""

import pytest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse

from repository.models import Version, VersionFile
from repository.services.drafts import record_create
from tests.factories import notebook_bytes, upload

pytestmark = pytest.mark.django_db


def draft_url(name: str, version: Version) -> str:
    return reverse(f"repository:{name}", kwargs={"record_id": version.record.public_id})


def test_my_uploads_lists_only_my_records_with_file_count_and_size(client, user, other_user):
    mine = record_create(owner=user, metadata={"title": "Band gaps of perovskites"})
    untitled = record_create(owner=user)
    record_create(owner=other_user, metadata={"title": "Someone else's work"})
    upload(mine, user)
    client.force_login(user)

    response = client.get(reverse("repository:my_uploads"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "Band gaps of perovskites" in html
    assert "Someone else&#x27;s work" not in html and "Someone else's work" not in html
    assert "Untitled" in html
    assert draft_url("draft_detail", mine) in html and draft_url("draft_detail", untitled) in html
    assert filesizeformat(len(notebook_bytes())) in html
    assert reverse("repository:draft_new") in html


def test_my_uploads_does_not_query_per_record(client, user, django_assert_max_num_queries):
    for number in range(5):
        upload(record_create(owner=user, metadata={"title": f"Upload {number}"}), user)
    client.force_login(user)

    with django_assert_max_num_queries(6):
        response = client.get(reverse("repository:my_uploads"))

    assert response.content.decode().count("Upload ") == 5


def test_my_uploads_says_when_there_is_nothing_yet(client, user):
    client.force_login(user)

    response = client.get(reverse("repository:my_uploads"))

    assert "You have not uploaded anything yet" in response.content.decode()


def test_new_upload_creates_a_draft_and_redirects_to_its_edit_page(client, user):
    client.force_login(user)

    response = client.post(reverse("repository:draft_new"), {"title": "Phonons in graphene"})

    version = Version.objects.get(record__owners=user)
    assert version.state == Version.State.DRAFT and version.title == "Phonons in graphene"
    assert response.status_code == 302 and response["Location"] == draft_url("draft_edit", version)


def test_new_upload_without_a_title_still_creates_a_draft(client, user):
    client.force_login(user)

    response = client.post(reverse("repository:draft_new"), {"title": ""})

    assert response.status_code == 302
    assert Version.objects.get(record__owners=user).title == ""


def test_new_upload_page_shows_the_form(client, user):
    client.force_login(user)

    response = client.get(reverse("repository:draft_new"))

    assert response.status_code == 200 and b"Create draft" in response.content
    assert not Version.objects.exists()


@pytest.mark.parametrize("name", ["my_uploads", "draft_new", "tokens"])
def test_anonymous_is_sent_to_login(client, name):
    url = reverse(f"repository:{name}")

    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={url}"


@pytest.mark.parametrize("name", ["draft_detail", "draft_edit"])
def test_anonymous_is_sent_to_login_from_a_draft(client, user, name):
    version = record_create(owner=user)

    response = client.get(draft_url(name, version))

    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("name", ["draft_detail", "draft_edit"])
def test_another_users_draft_is_not_found(client, user, other_user, name):
    theirs = record_create(owner=other_user, metadata={"title": "Private draft"})
    client.force_login(user)

    response = client.get(draft_url(name, theirs))

    assert response.status_code == 404
    assert b"Private draft" not in response.content
    assert b"Not found" in response.content


def test_unknown_record_is_not_found(client, user):
    client.force_login(user)

    response = client.get(reverse("repository:draft_detail", kwargs={"record_id": "00000-00000"}))

    assert response.status_code == 404


def test_a_draft_in_review_is_shown_read_only(client, user):
    version = record_create(owner=user, metadata={"title": "Under review"})
    upload(version, user)
    Version.objects.filter(pk=version.pk).update(state=Version.State.IN_REVIEW)
    client.force_login(user)

    html = client.get(draft_url("draft_detail", version)).content.decode()

    assert "Submitted for review" in html
    assert 'type="file"' not in html and "Edit metadata" not in html and ">Delete<" not in html
    listing = client.get(reverse("repository:my_uploads")).content.decode()
    assert draft_url("draft_detail", version) in listing


def test_a_published_versions_old_draft_url_leads_to_its_landing_page(client, user):
    version = record_create(owner=user, metadata={"title": "Published"})
    Version.objects.filter(pk=version.pk).update(state=Version.State.PUBLISHED)
    client.force_login(user)

    response = client.get(draft_url("draft_detail", version), follow=True)
    landing = reverse("repository:record_landing", kwargs={"record_id": version.record.public_id})
    assert response.redirect_chain == [(landing, 302)]
    assert "This upload has been published; this is its public page." in response.content.decode()
    assert client.get(draft_url("draft_edit", version)).url == landing
    listing = client.get(reverse("repository:my_uploads")).content.decode()
    assert "Published" in listing and draft_url("draft_detail", version) not in listing


def test_a_draft_never_published_is_still_a_plain_404_for_others(client, user, other_user):
    version = record_create(owner=user, metadata={"title": "Secret"})
    client.force_login(other_user)
    assert client.get(draft_url("draft_detail", version)).status_code == 404
    client.logout()
    assert client.get(reverse("repository:draft_detail", kwargs={"record_id": "no-such-record"})).status_code == 302


def test_draft_page_shows_files_missing_items_and_the_upload_widget(client, user):
    version = record_create(owner=user, metadata={"title": "Band gaps"})
    version_file = upload(version, user, path="analysis/main notebook.ipynb")
    client.force_login(user)

    response = client.get(draft_url("draft_detail", version))

    html = response.content.decode()
    record_id = version.record.public_id
    assert f'data-upload-url="/api/records/{record_id}/draft/files"' in html
    assert 'src="/static/repository/upload.js"' in html
    assert 'type="file"' in html and "multiple" in html
    # The download link goes to the API, path quoted, and works with the session.
    download = f"/api/records/{record_id}/draft/files/analysis/main%20notebook.ipynb"
    assert f'href="{download}"' in html
    assert client.get(download).status_code == 200
    assert version_file.blob.sha256[:12] in html
    # What submission still needs: no description, creator, licence or image; the notebook is there.
    assert "a description" in html and "at least one creator" in html and "a container image" in html
    assert "a notebook (.ipynb) file" not in html


def test_upload_widget_request_is_accepted_by_the_api_with_session_and_csrf(user):
    """Does what upload.js does: PUT the raw bytes with the CSRF token from the cookie, signed in by session."""
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    version = record_create(owner=user)
    page = browser.get(draft_url("draft_detail", version))
    upload_url = f"/api/records/{version.record.public_id}/draft/files"
    assert upload_url in page.content.decode()
    data = notebook_bytes()

    without_token = browser.put(f"{upload_url}/nb.ipynb", data, content_type="application/octet-stream")
    with_token = browser.put(f"{upload_url}/nb.ipynb", data, content_type="application/octet-stream",
                             headers={"X-CSRFToken": browser.cookies["csrftoken"].value})

    assert without_token.status_code == 403
    assert with_token.status_code == 201, with_token.content
    assert VersionFile.objects.filter(version=version, path="nb.ipynb").exists()


def test_draft_page_escapes_what_the_user_typed(client, user):
    version = record_create(owner=user, metadata={"title": "<script>alert(1)</script>",
                                                  "description": "<img src=x onerror=alert(2)>"})
    client.force_login(user)

    html = client.get(draft_url("draft_detail", version)).content.decode()

    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html


def test_deleting_a_file_removes_it_from_the_draft(client, user):
    version = record_create(owner=user)
    upload(version, user, path="nb.ipynb")
    upload(version, user, path="data/input.csv", data=b"a,b\n1,2\n")
    client.force_login(user)

    response = client.post(draft_url("draft_file_delete", version), {"path": "data/input.csv"}, follow=True)

    assert list(VersionFile.objects.filter(version=version).values_list("path", flat=True)) == ["nb.ipynb"]
    assert response.redirect_chain[-1][0] == draft_url("draft_detail", version)
    assert "Deleted data/input.csv." in response.content.decode()


def test_deleting_the_notebook_clears_it_as_the_one_to_run(client, user):
    version = record_create(owner=user)
    upload(version, user, path="nb.ipynb")
    client.force_login(user)

    client.post(draft_url("draft_file_delete", version), {"path": "nb.ipynb"})

    version.refresh_from_db()
    assert version.notebook_path == "" and not version.files.exists()


def test_deleting_a_file_of_someone_elses_draft_is_not_found(client, user, other_user):
    theirs = record_create(owner=other_user)
    upload(theirs, other_user, path="nb.ipynb")
    client.force_login(user)

    response = client.post(draft_url("draft_file_delete", theirs), {"path": "nb.ipynb"})

    assert response.status_code == 404
    assert VersionFile.objects.filter(version=theirs, path="nb.ipynb").exists()


def test_deleting_a_file_that_is_already_gone_says_so(client, user):
    version = record_create(owner=user)
    client.force_login(user)

    response = client.post(draft_url("draft_file_delete", version), {"path": "gone.csv"}, follow=True)

    assert response.status_code == 200
    assert "The draft has no file" in response.content.decode()


def test_file_delete_only_accepts_post(client, user):
    version = record_create(owner=user)
    upload(version, user)
    client.force_login(user)

    response = client.get(draft_url("draft_file_delete", version), {"path": "nb.ipynb"})

    assert response.status_code == 405 and version.files.exists()
