"""Access on the web pages: chosen on the deposit form, corrected (only towards open) on the correction form,
shown on the landing page, the draft page and the moderator's request page; lifted early by the owner."""

import datetime
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from repository.access.policy import today
from repository.models import AuditEvent, DoiOutbox, FileAccess, Version
from repository.selectors import version_metadata
from repository.services.drafts import record_create
from repository.services.published import version_correct_metadata
from tests.factories import UserFactory, published_version, submitted_review, upload
from tests.repository.web.helpers import deposit_post

pytestmark = pytest.mark.django_db


def day(days: int) -> datetime.date:
    return today() + datetime.timedelta(days=days)


@pytest.fixture
def draft(user):
    version = record_create(owner=user, metadata={"title": "Original title"})
    upload(version, user, path="analysis.ipynb")
    return version


@pytest.fixture
def edit_url(draft):
    return reverse("repository:draft_edit", kwargs={"record_id": draft.record.public_id})


def test_the_deposit_form_sets_an_embargo(client, user, draft, edit_url):
    client.force_login(user)
    assert 'name="access_files"' in client.get(edit_url).content.decode()

    response = client.post(edit_url, deposit_post({"title": "T", "access_files": "embargoed",
                                                   "embargo_until": day(60).isoformat(),
                                                   "embargo_reason": "Until the paper appears"}))

    assert response.status_code == 302, response.content.decode()[:2000]
    draft.refresh_from_db()
    assert (draft.access_files, draft.embargo_until, draft.embargo_reason) == (
        FileAccess.EMBARGOED, day(60), "Until the paper appears")
    page = client.get(reverse("repository:draft_detail", kwargs={"record_id": draft.record.public_id}))
    assert f"Embargoed until <time datetime=\"{day(60).isoformat()}\">" in page.content.decode()


def test_the_deposit_form_shows_the_services_refusal_on_the_date_field(client, user, draft, edit_url):
    client.force_login(user)

    response = client.post(edit_url, deposit_post({"title": "T", "access_files": "embargoed",
                                                   "embargo_until": day(-1).isoformat()}))

    assert response.status_code == 200
    form = response.context["deposit"].form
    assert "after today" in " ".join(form.errors["embargo_until"])
    draft.refresh_from_db()
    assert draft.access_files == FileAccess.OPEN and draft.title == "Original title"  # nothing saved


def test_a_day_left_in_the_form_does_not_stop_open_access(client, user, draft, edit_url):
    """The date field stays filled when the author switches back to open: it no longer applies, it is dropped."""
    client.force_login(user)

    response = client.post(edit_url, deposit_post({"title": "T", "access_files": "open",
                                                   "embargo_until": day(60).isoformat(), "embargo_reason": "x"}))

    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.access_files, draft.embargo_until, draft.embargo_reason) == (FileAccess.OPEN, None, "")


def test_the_form_prefills_the_current_access(client, user, draft, edit_url):
    Version.objects.filter(pk=draft.pk).update(access_files=FileAccess.RESTRICTED, embargo_reason="Personal data")
    client.force_login(user)

    html = client.get(edit_url).content.decode()

    [restricted] = re.findall(r'<input[^>]*value="restricted"[^>]*>', html)
    assert "checked" in restricted
    assert "checked" not in re.findall(r'<input[^>]*value="open"[^>]*>', html)[0]
    assert "Personal data" in html


@pytest.fixture
def moderator(db):
    return UserFactory(username="moderator")


def _published(owner, moderator, **access) -> Version:
    return published_version(owner, moderator, access={"files": "open", **access})


def _landing(client, version) -> str:
    return client.get(reverse("repository:version_landing", kwargs={"record_id": version.record.public_id,
                                                                    "number": version.number})).content.decode()


@pytest.mark.parametrize("access, words", [
    ({}, "Open access"),
    ({"files": "embargoed", "embargo_until": "2099-01-01", "embargo_reason": "Patent pending"}, None),
    ({"files": "restricted", "embargo_reason": "Personal data"},
     "Restricted: files are available on request (Personal data)"),
])
def test_the_landing_page_says_who_may_read_the_files(client, user, moderator, access, words):
    if access.get("files") == "embargoed":
        access["embargo_until"] = day(90).isoformat()
        words = f'Embargoed until <time datetime="{day(90).isoformat()}">{day(90).isoformat()}</time> (Patent pending)'
    version = _published(user, moderator, **access)

    html = _landing(client, version)

    status = html[html.index('id="access-status"'):]
    assert words in status[:300]
    assert 'id="lift-embargo"' not in html  # not for anonymous readers


def test_an_embargo_whose_day_has_come_reads_as_open_before_the_job_runs(client, user, moderator):
    version = _published(user, moderator, files="embargoed", embargo_until=day(5).isoformat())
    Version.objects.filter(pk=version.pk).update(embargo_until=today())

    html = _landing(client, version)
    assert 'data-access="open">Open access' in html


def test_the_owner_lifts_an_embargo_early_from_the_landing_page(client, user, moderator):
    version = _published(user, moderator, files="embargoed", embargo_until=day(30).isoformat())
    client.force_login(user)
    assert 'id="lift-embargo"' in _landing(client, version)
    generation = DoiOutbox.objects.get(version=version).generation

    response = client.post(reverse("repository:version_embargo_lift",
                                   kwargs={"record_id": version.record.public_id, "number": 1}))

    assert response.status_code == 302
    assert "embargo was lifted" in [str(m) for m in get_messages(response.wsgi_request)][0]
    version.refresh_from_db()
    assert (version.access_files, version.embargo_until) == (FileAccess.OPEN, None)
    assert DoiOutbox.objects.get(version=version).generation > generation
    event = AuditEvent.objects.get(version=version, action="version.embargo_lift")
    assert event.actor == user and event.data["early"] is True
    assert event.data["before"]["embargo_until"] == day(30).isoformat()
    assert 'data-access="open"' in _landing(client, version)


def test_a_stranger_cannot_lift_an_embargo(client, user, moderator):
    version = _published(user, moderator, files="embargoed", embargo_until=day(30).isoformat())
    client.force_login(UserFactory())

    response = client.post(reverse("repository:version_embargo_lift",
                                   kwargs={"record_id": version.record.public_id, "number": 1}))

    assert response.status_code == 404
    version.refresh_from_db()
    assert version.access_files == FileAccess.EMBARGOED


def _correct_url(version) -> str:
    return reverse("repository:version_correct", kwargs={"record_id": version.record.public_id, "number": 1})


def _correction(**access) -> dict:
    return deposit_post({"title": "Thermal expansion", "description": "Demo", "license": "CC-BY-4.0", **access},
                        creators=[{"name": "Doe, Jane"}])


def test_the_correction_form_opens_restricted_files(client, user, moderator):
    version = _published(user, moderator, files="restricted")
    client.force_login(user)

    response = client.post(_correct_url(version), _correction(access_files="open"))

    assert response.status_code == 302
    version.refresh_from_db()
    assert version.access_files == FileAccess.OPEN


def test_the_correction_form_refuses_to_close_open_files(client, user, moderator):
    version = _published(user, moderator)
    client.force_login(user)

    response = client.post(_correct_url(version), _correction(access_files="restricted"))

    assert response.status_code == 200
    assert "only become more open" in " ".join(response.context["deposit"].form.errors["access_files"])
    version.refresh_from_db()
    assert version.access_files == FileAccess.OPEN


def test_the_moderator_sees_the_access_on_the_request_page(client, monkeypatch):
    from repository import tasks

    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *a, **k: None)
    author = UserFactory()
    review = submitted_review(author, access={"files": "embargoed", "embargo_until": day(45).isoformat(),
                                              "embargo_reason": "Until the paper appears"})
    moderator = UserFactory(is_superuser=True)
    client.force_login(moderator)

    html = client.get(reverse("moderation:request_detail", kwargs={"request_id": review.pk})).content.decode()

    assert f"Embargoed until <time datetime=\"{day(45).isoformat()}\">" in html
    assert "(Until the paper appears)" in html


def test_a_held_correction_that_opens_files_is_kept_as_json(user, moderator, monkeypatch):
    """Communities that review corrections keep the correction (JSON) until a moderator approves it."""
    from repository import hooks

    version = _published(user, moderator, files="embargoed", embargo_until=day(30).isoformat())
    held = []
    monkeypatch.setattr(hooks, "corrections_reviewed", lambda version, actor: True)
    monkeypatch.setattr(hooks, "hold_correction", lambda **kwargs: held.append(kwargs))

    version_correct_metadata(version=version, actor=user, reason="Paper out",
                             metadata={**version_metadata(version), "access": {"files": "open"}})

    assert held and held[0]["fields"] == ["access"]
    version.refresh_from_db()
    assert version.access_files == FileAccess.EMBARGOED  # waits for the moderator


def test_the_moderators_timeline_says_how_a_correction_opened_the_files(client, user, moderator, monkeypatch):
    from moderation.services import review_act
    from repository import tasks
    from tests.factories import sync_pending

    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *a, **k: None)
    review = submitted_review(user, access={"files": "restricted", "embargo_reason": "Personal data"})
    admin = UserFactory(is_superuser=True)
    review_act(request_id=review.pk, action="accept", actor=admin)
    sync_pending()
    version = Version.objects.get(pk=review.version.pk)

    version_correct_metadata(version=version, actor=user, reason="Consent obtained",
                             metadata={**version_metadata(version), "access": {"files": "open"}})
    client.force_login(admin)
    html = client.get(reverse("moderation:request_detail", kwargs={"request_id": review.pk})).content.decode()

    timeline = html[html.index('id="timeline"'):]
    assert "<del>restricted (Personal data)</del><br><ins>open</ins>" in timeline


def test_a_new_version_that_closes_its_files_shows_in_the_moderators_diff(api, user, moderator):
    from moderation.diff import version_diff

    version = _published(user, moderator)
    record_id = version.record.public_id
    draft = api.post(f"/api/records/{record_id}/versions").json()
    draft["access"] = {"files": "restricted", "embargo_reason": "Personal data"}
    assert api.put(f"/api/records/{record_id}/draft", draft, format="json").status_code == 200

    diff = version_diff(Version.objects.get(record=version.record, number=2), reader=moderator)

    assert {"field": "access", "before": "open", "after": "restricted (Personal data)"} in diff["metadata"]
