"""The DOI sync under the faults found by fault injection, through the real `datacite` client against the loopback
fake: a 503 on one of an attempt's calls, DataCite coming back after an outage while every DOI waits for its
backoff, DOIs left pending for long, a DataCite that does not accept connections, and the database going away in
the middle of a sync."""

import socket
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import DatabaseError, connections
from django.utils import timezone

from repository.doi import DoiUnavailable
from repository.models import DoiOutbox, Version
from repository.services.dois import BUSY, SYNCED, doi_sync, doi_sync_pending
from tests.factories import UserFactory, accept, demo_draft, sync_pending
from tests.fakes.datacite import FakeDataCite
from tests.repository.doi.conftest import DATACITE_PASSWORD, DATACITE_PREFIX, DATACITE_USERNAME


def point_at(settings, server_url):
    settings.DOI_PROVIDER, settings.DOI_PREFIX = "datacite", DATACITE_PREFIX
    settings.DATACITE_API_URL, settings.DATACITE_TEST_MODE = server_url, False
    settings.DATACITE_USERNAME, settings.DATACITE_PASSWORD = DATACITE_USERNAME, DATACITE_PASSWORD
    settings.DATACITE_TIMEOUT, settings.DATACITE_CONNECT_TIMEOUT = 1.0, 1.0
    settings.DOI_SYNC_INNER_ATTEMPTS, settings.DOI_SYNC_INNER_DELAY = 3, 0.05
    # Production's backoff: a DOI that failed waits 30 s, 60 s, 120 s... before its own next try.
    settings.DOI_SYNC_RETRY_BASE, settings.DOI_SYNC_RETRY_MAX = 30.0, 3600.0


@pytest.fixture
def datacite(settings, datacite_server):
    point_at(settings, datacite_server.url)
    return datacite_server


@pytest.fixture
def scheduled(monkeypatch):
    """The outbox pks queued for doi_sync_task, in order, instead of being sent to a broker."""
    from repository import tasks

    queued = []
    monkeypatch.setattr(tasks.doi_sync_task, "delay", queued.append)
    return queued


@pytest.mark.django_db
def test_one_503_on_either_call_of_an_attempt_does_not_fail_it(user, datacite):
    draft = demo_draft(user)
    assert sync_pending() == [SYNCED]
    version = accept(draft, UserFactory())
    # Publishing is a GET and a PUT for the version DOI, a GET and a POST for the new concept DOI.
    datacite.fail_next(1, status=503, method="PUT")
    datacite.fail_next(1, status=503, method="POST")

    assert sync_pending() == [SYNCED, SYNCED]  # in this attempt, not after a backoff

    version.refresh_from_db()
    assert version.state == Version.State.PUBLISHED
    assert datacite.all_dois() == {doi: "findable" for doi in sorted([version.doi, version.record.concept_doi])}
    assert [r.status for r in datacite.requests if r.method in ("PUT", "POST")][-4:] == [503, 200, 503, 201]
    assert set(DoiOutbox.objects.values_list("attempts", flat=True)) == {0}


@pytest.mark.django_db
def test_a_registrar_failing_every_try_still_fails_the_attempt_after_a_few_tries(user, datacite):
    draft = demo_draft(user)
    datacite.fail_with(503)

    with pytest.raises(DoiUnavailable, match="503"):
        doi_sync(outbox_pk=draft.doi_outbox.pk)

    assert len(datacite.requests) == 3  # DOI_SYNC_INNER_ATTEMPTS, then the row's backoff
    row = DoiOutbox.objects.get(pk=draft.doi_outbox.pk)
    assert row.attempts == 1 and row.claimed_until is None and row.next_attempt_at > timezone.now()


@pytest.mark.django_db
def test_a_hanging_registrar_is_not_waited_on_again_within_the_attempt(user, datacite):
    draft = demo_draft(user)
    datacite.hang(3, times=None)

    started = time.monotonic()
    with pytest.raises(DoiUnavailable):
        doi_sync(outbox_pk=draft.doi_outbox.pk)

    assert len(datacite.requests) == 1
    assert time.monotonic() - started < 2.5  # one read timeout (1 s), not three


@pytest.mark.django_db
def test_when_datacite_answers_again_every_waiting_doi_is_synced_at_once(user, datacite, scheduled,
                                                                         django_capture_on_commit_callbacks):
    drafts = [demo_draft(user) for _ in range(3)]
    datacite.fail_with(503)  # the outage: every DOI fails once or more and waits for its backoff
    for draft in drafts:
        for _ in range(2):
            with pytest.raises(DoiUnavailable):
                doi_sync(outbox_pk=draft.doi_outbox.pk)
    assert all(row.next_attempt_at > timezone.now() + timedelta(seconds=50) for row in DoiOutbox.objects.all())
    datacite.recover()

    # The one-minute sweep finds nothing due, but probes one waiting DOI rather than leaving them all to wait.
    assert doi_sync_pending() == 1
    probe = scheduled.pop()
    with django_capture_on_commit_callbacks(execute=True):
        assert doi_sync(outbox_pk=probe) == SYNCED
    # Its success queued every other waiting DOI, without waiting for their backoff.
    assert sorted(scheduled) == sorted(d.doi_outbox.pk for d in drafts if d.doi_outbox.pk != probe)
    for pk in list(scheduled):
        assert doi_sync(outbox_pk=pk) == SYNCED

    assert datacite.all_dois() == {doi: "draft" for doi in sorted(d.doi for d in drafts)}
    assert not DoiOutbox.objects.filter(next_attempt_at__isnull=False).exists()


@pytest.mark.django_db
def test_a_sweep_during_the_outage_probes_one_doi_a_minute(user, datacite, scheduled):
    drafts = [demo_draft(user) for _ in range(3)]
    datacite.fail_with(503)
    for draft in drafts:
        with pytest.raises(DoiUnavailable):
            doi_sync(outbox_pk=draft.doi_outbox.pk)

    assert doi_sync_pending() == 1  # one probe, not every waiting DOI
    with pytest.raises(DoiUnavailable):
        doi_sync(outbox_pk=scheduled[0])
    assert len(scheduled) == 1  # a failed probe drains nothing


@pytest.mark.django_db
def test_a_doi_failing_on_its_own_keeps_its_backoff_while_the_others_sync(user, datacite, scheduled,
                                                                          django_capture_on_commit_callbacks):
    failing, healthy = demo_draft(user), demo_draft(user)
    datacite.fail_next(3, status=503, path_contains=failing.doi.split("/")[1])
    with pytest.raises(DoiUnavailable):
        doi_sync(outbox_pk=failing.doi_outbox.pk)

    with django_capture_on_commit_callbacks(execute=True):
        assert doi_sync(outbox_pk=healthy.doi_outbox.pk) == SYNCED
    assert doi_sync_pending() == 0  # DataCite answers others: no probe, and the failing DOI waits its turn

    assert scheduled == []
    assert DoiOutbox.objects.get(pk=failing.doi_outbox.pk).next_attempt_at > timezone.now()


@pytest.mark.django_db
def test_a_doi_pending_past_the_threshold_is_mailed_once_and_counted_in_the_metrics(user, datacite, settings,
                                                                                   scheduled, client):
    settings.ADMINS = [("Operator", "operator@example.org")]
    settings.DOI_PENDING_ALERT_MINUTES = 30
    draft = demo_draft(user)
    datacite.fail_with(503)
    with pytest.raises(DoiUnavailable):
        doi_sync(outbox_pk=draft.doi_outbox.pk)

    doi_sync_pending()
    assert mail.outbox == []  # pending, but not for long yet
    assert "nbarchive_doi_outbox_overdue 0.0" in client.get("/metrics").content.decode()

    # Half an hour later (the clock of this DOI moved back), DataCite still failing:
    DoiOutbox.objects.filter(pk=draft.doi_outbox.pk).update(pending_since=timezone.now() - timedelta(minutes=31))
    doi_sync_pending()
    doi_sync_pending()

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["operator@example.org"]
    assert draft.doi in mail.outbox[0].body and "503" in mail.outbox[0].body
    assert "nbarchive_doi_outbox_overdue 1.0" in client.get("/metrics").content.decode()

    datacite.recover()
    assert doi_sync(outbox_pk=draft.doi_outbox.pk) == SYNCED
    row = DoiOutbox.objects.get(pk=draft.doi_outbox.pk)
    assert row.pending_since is None and row.overdue_alerted_at is None  # a new delay is reported again
    assert "nbarchive_doi_outbox_overdue 0.0" in client.get("/metrics").content.decode()


@pytest.fixture
def unreachable_port():
    """A port whose listen queue is full: connecting to it hangs, as to a host that drops packets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.1)
    yield listener.getsockname()[1]
    for sock in [*fillers, listener]:
        sock.close()


@pytest.mark.django_db
def test_a_datacite_that_does_not_accept_connections_is_given_up_on_after_the_connect_timeout(
        user, settings, unreachable_port):
    point_at(settings, f"http://127.0.0.1:{unreachable_port}")
    settings.DATACITE_TIMEOUT, settings.DATACITE_CONNECT_TIMEOUT = 5.0, 0.3
    draft = demo_draft(user)

    started = time.monotonic()
    with pytest.raises(DoiUnavailable, match="did not answer"):
        doi_sync(outbox_pk=draft.doi_outbox.pk)

    # Three tries of 0.3 s each (and the small delays between), not one of the 5 s read timeout.
    assert time.monotonic() - started < 2.5


def test_doi_syncs_have_a_queue_of_their_own():
    from repository.celery import app

    for task in ("repository.tasks.doi_sync_task", "repository.tasks.doi_sync_pending_task"):
        assert app.amqp.router.route({}, task)["queue"].name == "dois"
    assert app.amqp.router.route({}, "repository.tasks.blob_promote_task")["queue"].name == "celery"


def test_every_queue_tasks_are_routed_to_has_a_worker_and_a_readiness_check(settings):
    from repository.management.commands.serve import EMBEDDED_WORKER_QUEUES

    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} | {"celery"}
    assert routed <= set(EMBEDDED_WORKER_QUEUES)
    assert routed <= set(settings.WORKER_QUEUES)


class DatabaseCuttingDataCite(FakeDataCite):
    """Carries out the POST that creates a DOI, then ends the sync's database connection before answering, as a
    database restart in the middle of a sync would."""

    backend_pid: int | None = None

    def answer(self, request, exchange):
        response = super().answer(request, exchange)
        if request.method == "POST" and self.backend_pid is not None:
            pid, self.backend_pid = self.backend_pid, None
            try:
                with connections["default"].cursor() as cursor:  # this thread's own connection
                    cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            finally:
                connections["default"].close()
        return response


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sync_cut_by_the_database_gives_up_its_claim_at_once(settings):
    if connections["default"].vendor != "postgresql":
        pytest.skip("ends a PostgreSQL backend")
    with DatabaseCuttingDataCite(username=DATACITE_USERNAME, password=DATACITE_PASSWORD,
                                 prefixes=(DATACITE_PREFIX,)) as datacite:
        point_at(settings, datacite.url)
        draft = demo_draft(UserFactory())
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            datacite.backend_pid = cursor.fetchone()[0]

        with pytest.raises(DatabaseError):
            doi_sync(outbox_pk=draft.doi_outbox.pk)

        assert datacite.state(draft.doi) == "draft"  # DataCite carried it out; we could not record it
        row = DoiOutbox.objects.get(pk=draft.doi_outbox.pk)
        assert row.claimed_until is None  # not held for minutes by a sync that is over
        assert row.is_pending
        assert doi_sync(outbox_pk=row.pk) != BUSY
        assert not DoiOutbox.objects.get(pk=row.pk).is_pending
        assert len([r for r in datacite.requests if r.method == "POST"]) == 1  # the retry did not create it again


# --- DataCite failing at random ---------------------------------------------------------------------------------

MAX_ROUNDS = 6  # of the sweep; at a 30% failure rate an attempt (three tries within it) fails about one time in 8


def drain(rounds_taken: list[int]) -> None:
    """Sync every pending DOI, round after round as the sweep would once their backoffs passed, until none is
    pending; records how many rounds that took (at most MAX_ROUNDS)."""
    from django.db.models import F

    for round_number in range(1, MAX_ROUNDS + 1):
        pending = list(DoiOutbox.objects.filter(synced_generation__lt=F("generation"), needs_attention=False)
                       .order_by("pk").values_list("pk", flat=True))
        if not pending:
            rounds_taken.append(round_number - 1)
            return
        for pk in pending:
            try:
                doi_sync(outbox_pk=pk)
            except DoiUnavailable:
                pass
    still = DoiOutbox.objects.filter(synced_generation__lt=F("generation")).values_list("doi", "last_error")
    assert not still, f"still pending after {MAX_ROUNDS} rounds: {list(still)}"
    rounds_taken.append(MAX_ROUNDS)


def second_version(first: Version, owner) -> Version:
    from repository.selectors import version_metadata
    from repository.services.drafts import draft_update
    from repository.services.new_versions import version_new_draft

    draft = version_new_draft(record=first.record, actor=owner)
    metadata = version_metadata(draft)
    return draft_update(version=draft, actor=owner, metadata={**metadata, "title": f"{first.title}, second look"})


@pytest.mark.django_db
def test_at_a_30_percent_failure_rate_every_doi_ends_findable_with_its_metadata_after_a_few_rounds(settings,
                                                                                                  scheduled):
    from repository.exports.datacite import concept_datacite_metadata, version_datacite_metadata

    owner, moderator = UserFactory(), UserFactory()
    rounds = []
    with FakeDataCite(username=DATACITE_USERNAME, password=DATACITE_PASSWORD, prefixes=(DATACITE_PREFIX,),
                      failure_rate=0.3, failure_seed=18) as datacite:
        point_at(settings, datacite.url)
        settings.DOI_SYNC_INNER_DELAY = 0.01
        # Some answers are lost after DataCite carried the request out: a retry must not create a DOI twice.
        datacite.fail_randomly(0.3, seed=18, statuses=(500, 502, 503, 504), lost_share=0.2)
        # Ten records, each published twice: 20 version DOIs and 10 concept DOIs that must end on the second.
        drafts = [demo_draft(owner, title=f"Thermal expansion {n}") for n in range(10)]
        drain(rounds)
        firsts = [accept(draft, moderator) for draft in drafts]
        drain(rounds)
        seconds = [accept(second_version(first, owner), moderator) for first in firsts]
        drain(rounds)
        failed = [r for r in datacite.requests if r.fault]

    versions = [Version.objects.select_related("record").get(pk=v.pk) for v in [*firsts, *seconds]]
    assert len(failed) > 20  # the failure mode was on
    assert max(rounds) <= MAX_ROUNDS and not DoiOutbox.objects.filter(needs_attention=True).exists()
    # No DOI lost, duplicated or left over: exactly the 20 versions' and 10 concepts' names, all findable.
    expected_names = {v.doi for v in versions} | {v.record.concept_doi for v in versions}
    assert len(expected_names) == 30
    assert datacite.all_dois() == {doi: "findable" for doi in sorted(expected_names)}
    for version in versions:
        assert version.state == Version.State.PUBLISHED
        registered = datacite.doi(version.doi)
        assert registered["url"] == f"{settings.SITE_URL}/records/{version.record.public_id}/versions/{version.number}/"
        sent = version_datacite_metadata(version)
        assert {key: registered["metadata"].get(key) for key in sent if key not in ("doi", "url", "event")} == {
            key: value for key, value in sent.items() if key not in ("doi", "url", "event")}
        concept = datacite.doi(version.record.concept_doi)
        assert concept["url"] == f"{settings.SITE_URL}/records/{version.record.public_id}/"
        assert concept["metadata"]["titles"] == concept_datacite_metadata(version.record)["titles"]
    # Concept DOIs end on the latest version (its title, both versions), which names the first as its previous.
    for first, second in zip(firsts, seconds, strict=True):
        concept = datacite.doi(first.record.concept_doi)["metadata"]
        assert concept["titles"] == [{"title": f"{first.title}, second look"}]
        assert {("HasVersion", first.doi), ("HasVersion", second.doi)} <= {
            (r["relationType"], r["relatedIdentifier"]) for r in concept["relatedIdentifiers"]}
        links = {(r["relationType"], r["relatedIdentifier"])
                 for r in datacite.doi(first.doi)["metadata"]["relatedIdentifiers"]}
        assert ("IsPreviousVersionOf", second.doi) in links
