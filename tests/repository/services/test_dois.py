"""The DOI life cycle with the embedded registrar (DOI_PROVIDER=local): reserved with the draft, findable on
publication, the concept DOI following the latest version, deleted with a discarded draft, a tombstone when
withdrawn. The DataCite registrar is exercised against the loopback fake in tests/repository/doi/."""

import pytest
from django.utils import timezone

from repository.errors import Conflict
from repository.models import DoiOutbox, LocalDoi, Version
from repository.services.dois import BUSY, NOTHING, SYNCED, doi_sync, doi_sync_pending
from repository.services.new_versions import draft_discard, version_new_draft
from repository.services.published import version_withdraw
from tests.factories import UserFactory, accept, demo_draft, published_version, sync_pending

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator(db):
    return UserFactory(username="moderator")


@pytest.fixture
def admin(db):
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def registrar(doi):
    return LocalDoi.objects.filter(doi=doi).values_list("state", "url").first()


def test_a_new_draft_gets_its_doi_at_once_and_the_registrar_holds_it_as_a_draft(user):
    version = demo_draft(user)

    assert version.doi.startswith("10.5072/nba.")
    assert DoiOutbox.objects.get(version=version).wanted_state == "draft"
    assert sync_pending() == [SYNCED]
    assert registrar(version.doi) == ("draft", "")


def test_publication_makes_the_version_doi_findable_and_creates_the_concept_doi(user, moderator, settings):
    version = accept(demo_draft(user), moderator)
    assert version.state == Version.State.PUBLISHING  # not published until the registrar confirms

    sync_pending()

    version.refresh_from_db()
    record = version.record
    assert version.state == Version.State.PUBLISHED
    assert registrar(version.doi) == ("findable", f"{settings.SITE_URL}/records/{record.public_id}/versions/1/")
    assert record.concept_doi and record.concept_doi != version.doi
    assert registrar(record.concept_doi) == ("findable", f"{settings.SITE_URL}/records/{record.public_id}/")
    metadata = LocalDoi.objects.get(doi=version.doi).metadata
    assert {"relatedIdentifier": record.concept_doi, "relatedIdentifierType": "DOI",
            "relationType": "IsVersionOf"} in metadata["relatedIdentifiers"]


def test_a_second_version_links_both_ways_and_the_concept_follows_it(user, moderator):
    first = published_version(user, moderator)
    draft = version_new_draft(record=first.record, actor=user)
    second = accept(draft, moderator)
    sync_pending()

    second.refresh_from_db()
    assert second.state == Version.State.PUBLISHED and second.doi != first.doi
    concept = LocalDoi.objects.get(doi=first.record.concept_doi)
    assert concept.url.endswith(f"/records/{first.record.public_id}/")
    concept_links = {(r["relationType"], r["relatedIdentifier"]) for r in concept.metadata["relatedIdentifiers"]}
    assert {("HasVersion", first.doi), ("HasVersion", second.doi)} <= concept_links
    first_links = {(r["relationType"], r["relatedIdentifier"])
                   for r in LocalDoi.objects.get(doi=first.doi).metadata["relatedIdentifiers"]}
    assert ("IsPreviousVersionOf", second.doi) in first_links
    second_links = {(r["relationType"], r["relatedIdentifier"])
                    for r in LocalDoi.objects.get(doi=second.doi).metadata["relatedIdentifiers"]}
    assert ("IsNewVersionOf", first.doi) in second_links


def test_a_new_version_shares_the_files_by_content_and_reserves_its_own_doi(user, moderator):
    first = published_version(user, moderator, keywords=["thermal"])

    draft = version_new_draft(record=first.record, actor=user)

    assert (draft.number, draft.state, draft.title, draft.keywords) == (2, "draft", first.title, ["thermal"])
    assert draft.doi and draft.doi not in (first.doi, first.record.concept_doi)
    assert sorted((f.path, f.blob_id) for f in draft.files.all()) == sorted((f.path, f.blob_id)
                                                                             for f in first.files.all())
    assert [c.name for c in draft.creators.all()] == [c.name for c in first.creators.all()]


def test_only_one_new_version_at_a_time_and_only_for_owners(user, other_user, moderator):
    first = published_version(user, moderator)
    with pytest.raises(Exception) as raised:
        version_new_draft(record=first.record, actor=other_user)
    assert "owners" in str(raised.value)

    version_new_draft(record=first.record, actor=user)
    with pytest.raises(Conflict, match="Version 2 is still draft"):
        version_new_draft(record=first.record, actor=user)


def test_discarding_a_draft_deletes_its_draft_doi_and_the_name_is_never_minted_again(user):
    version = demo_draft(user)
    sync_pending()
    doi, record_pk = version.doi, version.record_id

    assert draft_discard(version=version, actor=user) is None  # the only draft: the record goes with it
    sync_pending()

    row = DoiOutbox.objects.get(doi=doi)
    assert (row.wanted_state, row.registrar_state, row.is_pending) == ("deleted", "deleted", False)
    assert registrar(doi)[0] == "deleted"
    assert not Version.objects.filter(record_id=record_pk).exists()


def test_discarding_a_new_version_draft_keeps_the_published_record(user, moderator):
    first = published_version(user, moderator)
    draft = version_new_draft(record=first.record, actor=user)

    assert draft_discard(version=draft, actor=user) == first.record
    sync_pending()

    # Discarded before the sync reached the registrar: it never held the draft, and the name stays taken here.
    assert registrar(draft.doi) is None
    assert DoiOutbox.objects.get(doi=draft.doi).registrar_state == "deleted"
    assert registrar(first.doi)[0] == "findable"


def test_a_version_in_review_cannot_be_discarded(user):
    version = demo_draft(user)
    Version.objects.filter(pk=version.pk).update(state=Version.State.IN_REVIEW)

    with pytest.raises(Conflict, match="in review"):
        draft_discard(version=version, actor=user)
    assert DoiOutbox.objects.get(version=version).wanted_state == "draft"


def test_withdrawal_keeps_the_doi_registered_on_the_tombstone_and_the_concept_moves_back(user, moderator, admin):
    first = published_version(user, moderator)
    second = accept(version_new_draft(record=first.record, actor=user), moderator)
    sync_pending()

    version_withdraw(version=Version.objects.get(pk=second.pk), actor=admin, reason="Data were fabricated.")
    sync_pending()

    assert registrar(second.doi) == ("registered", LocalDoi.objects.get(doi=second.doi).url)
    assert LocalDoi.objects.get(doi=second.doi).url.endswith("/versions/2/")
    assert registrar(first.record.concept_doi)[0] == "findable"
    concept_title_source = LocalDoi.objects.get(doi=first.record.concept_doi).metadata
    assert second.doi not in {r["relatedIdentifier"] for r in concept_title_source.get("relatedIdentifiers", [])
                              if r["relationType"] == "IsVersionOf"}

    version_withdraw(version=Version.objects.get(pk=first.pk), actor=admin, reason="Same data.")
    sync_pending()
    assert registrar(first.record.concept_doi)[0] == "registered"  # nothing left to point at but tombstones


def test_a_sync_claimed_by_another_worker_is_left_to_it(user):
    version = demo_draft(user)
    row = DoiOutbox.objects.get(version=version)
    DoiOutbox.objects.filter(pk=row.pk).update(claimed_until=timezone.now() + timezone.timedelta(minutes=5))
    assert doi_sync(outbox_pk=row.pk) == BUSY
    assert registrar(version.doi) is None

    DoiOutbox.objects.filter(pk=row.pk).update(claimed_until=timezone.now() - timezone.timedelta(seconds=1))
    assert doi_sync(outbox_pk=row.pk) == SYNCED  # a crashed worker's claim expires
    assert doi_sync(outbox_pk=row.pk) == NOTHING


def test_the_sweep_schedules_every_pending_doi_once(user, monkeypatch):
    from repository import tasks

    scheduled = []
    monkeypatch.setattr(tasks.doi_sync_task, "delay", scheduled.append)
    demo_draft(user)
    demo_draft(user)

    assert doi_sync_pending() == 2 and len(scheduled) == 2
    sync_pending()
    assert doi_sync_pending() == 0 and len(scheduled) == 2


def test_public_changes_move_the_harvesting_datestamp(user, moderator, admin):
    from repository.selectors import version_metadata
    from repository.services.published import version_correct_metadata

    first = published_version(user, moderator)
    accepted_at = Version.objects.get(pk=first.pk).public_changed_at
    assert accepted_at is not None

    accept(version_new_draft(record=first.record, actor=user), moderator)
    linked_at = Version.objects.get(pk=first.pk).public_changed_at
    assert linked_at > accepted_at  # its DataCite record gained IsPreviousVersionOf

    version_correct_metadata(version=first, actor=user, metadata={**version_metadata(first), "title": "Fixed"})
    corrected_at = Version.objects.get(pk=first.pk).public_changed_at
    assert corrected_at > linked_at
    assert Version.objects.filter(record=first.record, state="draft").count() == 0
