"""The DataCite registrar (DOI_PROVIDER=datacite) through the real `datacite` client against the loopback fake:
the whole life cycle, and DataCite failing (5xx, timeouts, answers lost after the change was made, refusals)
without a DOI lost, duplicated or left pointing nowhere."""

import pytest

from repository.doi import DoiUnavailable
from repository.models import DoiOutbox, Version
from repository.selectors import version_metadata
from repository.services.dois import REJECTED, SYNCED, doi_sync, doi_sync_pending
from repository.services.new_versions import draft_discard, version_new_draft
from repository.services.published import version_correct_metadata, version_withdraw
from tests.factories import UserFactory, accept, demo_draft, sync_pending
from tests.repository.doi.conftest import DATACITE_PASSWORD, DATACITE_PREFIX, DATACITE_USERNAME

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def datacite_settings(settings, datacite_server):
    settings.DOI_PROVIDER = "datacite"
    settings.DOI_PREFIX = DATACITE_PREFIX
    settings.DATACITE_API_URL = datacite_server.url
    settings.DATACITE_USERNAME, settings.DATACITE_PASSWORD = DATACITE_USERNAME, DATACITE_PASSWORD
    settings.DATACITE_TEST_MODE = False
    settings.DATACITE_TIMEOUT = 1.0
    return settings


@pytest.fixture
def moderator(db):
    return UserFactory(username="moderator")


def posts_for(server, doi):
    return [r for r in server.requests if r.method == "POST" and r.json()["data"]["attributes"].get("doi") == doi]


def sync_until_quiet(rounds=5):
    """Sync until nothing is pending, swallowing passing failures as the task's retries would."""
    for _ in range(rounds):
        try:
            if not sync_pending():
                return
        except DoiUnavailable:
            continue


def test_reserve_publish_and_concept_at_datacite(user, moderator, datacite_server, settings):
    draft = demo_draft(user)
    assert draft.doi.startswith(DATACITE_PREFIX + "/")
    sync_pending()
    assert datacite_server.state(draft.doi) == "draft"

    version = accept(draft, moderator)
    assert sync_pending() == [SYNCED, SYNCED]  # the version DOI and the new concept DOI

    version.refresh_from_db()
    record = version.record
    assert version.state == Version.State.PUBLISHED
    held = datacite_server.doi(version.doi)
    assert held["state"] == "findable"
    assert held["url"] == f"{settings.SITE_URL}/records/{record.public_id}/versions/1/"
    assert held["metadata"]["types"]["resourceTypeGeneral"] == "ComputationalNotebook"
    assert datacite_server.state(record.concept_doi) == "findable"
    assert datacite_server.doi(record.concept_doi)["url"] == f"{settings.SITE_URL}/records/{record.public_id}/"


def test_datacite_down_for_a_while_loses_and_duplicates_nothing(user, moderator, datacite_server):
    draft = demo_draft(user)
    sync_pending()
    version = accept(draft, moderator)
    datacite_server.fail_with(503)

    for _ in range(3):
        with pytest.raises(DoiUnavailable, match="503"):
            doi_sync(outbox_pk=version.doi_outbox.pk)
    row = DoiOutbox.objects.get(pk=version.doi_outbox.pk)
    assert (row.attempts, row.is_pending, row.needs_attention) == (3, True, False)
    assert row.next_attempt_at is not None and "503" in row.last_error
    assert Version.objects.get(pk=version.pk).state == Version.State.PUBLISHING

    datacite_server.recover()
    sync_until_quiet()

    version.refresh_from_db()
    assert version.state == Version.State.PUBLISHED
    assert datacite_server.state(version.doi) == "findable"
    assert datacite_server.state(version.record.concept_doi) == "findable"
    assert set(datacite_server.all_dois()) == {version.doi, version.record.concept_doi}
    assert DoiOutbox.objects.get(pk=row.pk).attempts == 0


def test_an_answer_lost_after_datacite_made_the_doi_is_reconciled_not_repeated(user, moderator, datacite_server):
    version = accept(demo_draft(user), moderator)  # never synced as a draft: publication creates it
    datacite_server.lose_next(1, method="POST")  # DataCite does it; we do not hear back

    # Tried again within the same attempt (the connection broke, nothing hung), from what DataCite now holds.
    assert doi_sync(outbox_pk=version.doi_outbox.pk) == SYNCED
    assert datacite_server.state(version.doi) == "findable"
    assert len(posts_for(datacite_server, version.doi)) == 1  # the retry read the DOI and updated it
    assert Version.objects.get(pk=version.pk).state == Version.State.PUBLISHED


def test_a_timeout_is_a_passing_failure(user, moderator, datacite_server):
    draft = demo_draft(user)
    datacite_server.hang(3, times=1)

    with pytest.raises(DoiUnavailable, match="did not answer"):
        doi_sync(outbox_pk=draft.doi_outbox.pk)

    assert doi_sync(outbox_pk=draft.doi_outbox.pk) == SYNCED
    assert datacite_server.state(draft.doi) == "draft"


def test_refused_credentials_need_an_admin_and_are_not_retried_blindly(user, datacite_settings, datacite_server):
    datacite_settings.DATACITE_PASSWORD = "wrong"
    draft = demo_draft(user)

    assert doi_sync(outbox_pk=draft.doi_outbox.pk) == REJECTED

    row = DoiOutbox.objects.get(pk=draft.doi_outbox.pk)
    assert row.needs_attention and "401" in row.last_error
    assert doi_sync_pending() == 0  # the sweep leaves it to an admin
    assert datacite_server.state(draft.doi) is None


def test_discarding_a_synced_draft_deletes_it_at_datacite(user, datacite_server):
    draft = demo_draft(user)
    sync_pending()
    doi = draft.doi

    draft_discard(version=draft, actor=user)
    sync_pending()

    assert datacite_server.state(doi) is None
    assert doi in datacite_server.deleted_dois()
    assert DoiOutbox.objects.get(doi=doi).registrar_state == "deleted"


def test_withdrawal_hides_the_doi_and_points_it_at_the_tombstone(user, moderator, datacite_server):
    version = accept(demo_draft(user), moderator)
    sync_pending()
    admin = UserFactory(is_superuser=True, is_staff=True)

    version_withdraw(version=Version.objects.get(pk=version.pk), actor=admin, reason="Retracted by the authors.")
    sync_pending()

    assert datacite_server.state(version.doi) == "registered"
    assert datacite_server.doi(version.doi)["url"].endswith(f"/records/{version.record.public_id}/versions/1/")
    assert datacite_server.state(version.record.concept_doi) == "registered"


def test_a_metadata_correction_is_sent_again_and_files_cannot_change(user, moderator, datacite_server):
    version = accept(demo_draft(user), moderator)
    sync_pending()
    metadata = version_metadata(Version.objects.get(pk=version.pk))

    version_correct_metadata(version=version, actor=user, reason="Typo in the title",
                             metadata={**metadata, "title": "Thermal expansion of copper"})
    sync_pending()

    assert datacite_server.doi(version.doi)["metadata"]["titles"][0]["title"] == "Thermal expansion of copper"
    concept = datacite_server.doi(version.record.concept_doi)
    assert concept["metadata"]["titles"][0]["title"] == "Thermal expansion of copper"
    event = version.events.filter(action="version.correct").get()
    assert event.data["before"]["title"] == "Thermal expansion" and event.data["reason"] == "Typo in the title"


def test_a_second_version_at_datacite_links_the_first(user, moderator, datacite_server):
    first = accept(demo_draft(user), moderator)
    sync_pending()
    second = accept(version_new_draft(record=first.record, actor=user), moderator)
    sync_pending()

    links = {(r["relationType"],
              r["relatedIdentifier"]) for r in datacite_server.doi(first.doi)["metadata"]["relatedIdentifiers"]}
    assert ("IsPreviousVersionOf", second.doi) in links
    assert ("IsVersionOf", first.record.concept_doi) in links


def test_doi_sync_all_points_datacite_at_the_new_site_address(user, moderator, datacite_server, settings):
    """SITE_URL changed (a move, or `make run ADDRESS=` on another port): `doi_sync --all` asks DataCite where each
    DOI points and sends the new landing URL for those that still point at the old address, and only those."""
    import io

    from django.core.management import call_command

    settings.SITE_URL = "https://old.example.org"
    version = accept(demo_draft(user), moderator)
    sync_pending()
    settings.SITE_URL = "https://archive.example.org"
    before = len(datacite_server.requests)

    call_command("doi_sync", "--all", stdout=io.StringIO())

    record = version.record
    assert datacite_server.doi(version.doi)["url"] == f"https://archive.example.org/records/{record.public_id}/versions/1/"
    assert datacite_server.doi(record.concept_doi)["url"] == f"https://archive.example.org/records/{record.public_id}/"
    assert datacite_server.state(version.doi) == "findable"
    sent = [r for r in datacite_server.requests[before:] if r.method in ("POST", "PUT")]
    assert len(sent) == 2
    call_command("doi_sync", "--all", stdout=io.StringIO())
    assert [r for r in datacite_server.requests[before:] if r.method in ("POST", "PUT")] == sent


def test_deleting_a_draft_doi_that_is_already_gone_is_done_not_an_error(datacite_server):
    """A retried delete whose first attempt DataCite carried out but whose answer was lost finds nothing left:
    that is the outcome asked for, not a failure (the client's own not-found error stays inside the adapter)."""
    from repository.doi.datacite import DataCiteDoiProvider

    DataCiteDoiProvider().delete_draft(f"{DATACITE_PREFIX}/never-made")

    assert datacite_server.requests[-1].method == "DELETE"
