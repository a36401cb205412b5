"""DOIs: what we want the registrar to hold (the outbox, written inside the caller's transaction) and the sync
that brings the registrar up to date (run by a Celery task after the transaction commits).

Writers call `doi_reserve_for_draft`, `doi_discard_for_draft`, `doi_publish_version`, `doi_withdraw_version` or
`doi_metadata_changed` inside their transaction. Each sets the wanted state and bumps the row's generation, and
schedules `doi_sync_task` on commit, so a rolled-back change never reaches DataCite.

`doi_sync` is idempotent: it asks the registrar what it holds and does only what is missing, so a repeated
task, a request that timed out after DataCite carried it out, or two workers racing never mint twice.
"""

import logging
import random
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Now
from django.urls import reverse
from django.utils import timezone

from repository.doi import DoiProvider, DoiRejected, DoiTimedOut, DoiUnavailable, get_provider
from repository.exports.datacite import (
    concept_datacite_metadata,
    validate_datacite_metadata,
    version_datacite_metadata,
)
from repository.models import DoiOutbox, DoiState, Record, Version
from repository.models.records import _ID_ALPHABET
from repository.services.audit import audit_event_append

logger = logging.getLogger(__name__)

SYNCED, BUSY, REJECTED, NOTHING = "synced", "busy", "rejected", "nothing to do"
# The sweep probes a waiting DOI only when none synced for this long: when others go through, the registrar is up.
PROBE_AFTER_QUIET = timedelta(minutes=5)


# --- Names -------------------------------------------------------------------------------------------------

def doi_new_name() -> str:
    """A fresh DOI under our prefix with a random suffix (as DataCite recommends), never one used before:
    names of deleted drafts stay in the outbox."""
    while True:
        suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))
        doi = f"{settings.DOI_PREFIX}/nba.{suffix[:5]}-{suffix[5:]}".lower()
        if not DoiOutbox.objects.filter(doi=doi).exists():
            return doi


def doi_url(doi: str) -> str:
    """Where a reader resolves the DOI: doi.org, or the app itself for the embedded registrar."""
    if settings.DOI_PROVIDER == "local":
        return settings.SITE_URL + reverse("repository:doi_resolve", kwargs={"doi": doi})
    return f"https://doi.org/{doi}"


# --- Writers (inside the caller's transaction) ----------------------------------------------------------

def doi_reserve_for_draft(version: Version) -> DoiOutbox:
    """Give a new draft its version DOI now, so the author can write it into the notebook."""
    row = DoiOutbox.objects.create(doi=doi_new_name(), kind=DoiOutbox.Kind.VERSION, record=version.record,
                                   version=version, wanted_state=DoiState.DRAFT, pending_since=timezone.now())
    version.doi = row.doi
    version.save(update_fields=["doi", "updated"])
    _sync_on_commit(row)
    return row


def doi_discard_for_draft(version: Version) -> None:
    """The draft is being deleted: its draft DOI goes too (DataCite deletes drafts), its name stays taken."""
    row = DoiOutbox.objects.filter(version=version).first()
    if row is not None:
        _want(row, DoiState.DELETED)


def doi_publish_version(version: Version) -> None:
    """On acceptance: the version DOI becomes findable; the concept DOI is created on the first publication and
    follows the latest version; the previous version's metadata gains IsPreviousVersionOf."""
    record = Record.objects.select_for_update().get(pk=version.record_id)
    row = DoiOutbox.objects.filter(version=version).first()
    if row is None:  # a version created before DOIs were reserved with drafts
        row = doi_reserve_for_draft(version)
    _want(row, DoiState.FINDABLE)
    concept = DoiOutbox.objects.filter(record=record, kind=DoiOutbox.Kind.CONCEPT).first()
    if concept is None:
        concept = DoiOutbox.objects.create(doi=doi_new_name(), kind=DoiOutbox.Kind.CONCEPT, record=record,
                                           wanted_state=DoiState.FINDABLE, pending_since=timezone.now())
        record.concept_doi = concept.doi
        record.save(update_fields=["concept_doi", "updated"])
        version.record.concept_doi = concept.doi  # the caller's copy of the record shows it too
        _sync_on_commit(concept)
    else:
        _want(concept, DoiState.FINDABLE)
    _touch_neighbours(version)


def doi_withdraw_version(version: Version) -> None:
    """A withdrawn version's DOI stays registered and resolves to its tombstone, hidden from search. The
    concept follows the latest version still published, or becomes a tombstone itself when none is left."""
    row = DoiOutbox.objects.filter(version=version).first()
    if row is not None:
        _want(row, DoiState.REGISTERED)
    concept = DoiOutbox.objects.filter(record_id=version.record_id, kind=DoiOutbox.Kind.CONCEPT).first()
    if concept is not None:
        still_published = version.record.versions.filter(state=Version.State.PUBLISHED).exclude(pk=version.pk)
        _want(concept, DoiState.FINDABLE if still_published.exists() else DoiState.REGISTERED)
    _touch_neighbours(version)


def doi_metadata_changed(version: Version) -> None:
    """A published version's metadata was corrected: send it again (and the concept's, which copies the latest)."""
    for row in DoiOutbox.objects.filter(Q(version=version) | Q(record_id=version.record_id, kind="concept")):
        _want(row, row.wanted_state)


def _touch_neighbours(version: Version) -> None:
    """The versions before and after carry IsNewVersionOf / IsPreviousVersionOf links to this one."""
    accepted = version.record.versions.filter(state__in=Version.ACCEPTED_STATES).exclude(pk=version.pk)
    neighbours = [accepted.filter(number__lt=version.number).order_by("-number").first(),
                  accepted.filter(number__gt=version.number).order_by("number").first()]
    neighbours = [v for v in neighbours if v is not None]
    # Their public metadata changed (the new links): harvesters must see them again.
    Version.objects.filter(pk__in=[v.pk for v in neighbours]).update(public_changed_at=timezone.now())
    for row in DoiOutbox.objects.filter(version__in=neighbours):
        _want(row, row.wanted_state)


def _want(row: DoiOutbox, state: str) -> None:
    DoiOutbox.objects.filter(pk=row.pk).update(
        wanted_state=state, generation=F("generation") + 1, needs_attention=False, next_attempt_at=None,
        pending_since=Coalesce("pending_since", Now()))
    _sync_on_commit(row)


def _sync_on_commit(row: DoiOutbox) -> None:
    from repository.tasks import doi_sync_task

    pk = row.pk
    transaction.on_commit(lambda: doi_sync_task.delay(pk))


# --- The sync ------------------------------------------------------------------------------------------------

def doi_sync(*, outbox_pk: int, provider: DoiProvider | None = None) -> str:
    """Bring the registrar up to date with the wanted state of one DOI. Returns what happened; raises
    DoiUnavailable when the registrar failed on its side (the caller retries later)."""
    row = _claim(outbox_pk)
    if row is None:
        return BUSY
    if not row.is_pending:
        _release(row)
        return NOTHING
    generation = row.generation
    try:
        try:
            registrar_state = _reconcile_retrying(row, provider or get_provider())
        except DoiUnavailable as exc:
            _record_failure(row, str(exc), needs_attention=False)
            raise
        except DoiRejected as exc:
            _record_failure(row, str(exc), needs_attention=True)
            logger.error("DataCite refused %s: %s", row.doi, exc)
            return REJECTED
        _record_success(row, generation, registrar_state)
    except DatabaseError:
        # Cut by the database (a restart, a failover): without this the claim would keep every other sync away
        # until it lapses. The registrar call is idempotent, so the task simply tries again soon.
        _release_after_database_error(row)
        raise
    if row.attempts:
        # This DOI had failed and now went through: the registrar is back. The others that failed meanwhile go
        # now too. (A DOI that never failed says nothing new, so one DOI failing for reasons of its own keeps its
        # backoff while the rest sync.)
        _drain_waiting_on_commit()
    return SYNCED


def doi_sync_pending(*, limit: int = 500) -> int:
    """The periodic sweep: schedule a sync of every pending DOI whose retry time has come (a safety net behind
    the task's own retries, e.g. after a worker was lost). Returns how many were scheduled."""
    from repository.services.doi_alerts import doi_alert_overdue
    from repository.tasks import doi_sync_task

    now = timezone.now()
    unclaimed = (DoiOutbox.objects.filter(synced_generation__lt=F("generation"), needs_attention=False)
                 .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)))
    pks = list(unclaimed.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
               .order_by("updated").values_list("pk", flat=True)[:limit])
    if not pks and not DoiOutbox.objects.filter(synced_at__gte=now - PROBE_AFTER_QUIET).exists():
        # Everything pending waits for its backoff, which after a long outage is minutes, and nothing went through
        # lately: the registrar may be down, or back. Try the DOI due soonest now, as a probe; if the registrar is
        # back, its success drains all the others at once.
        probe = unclaimed.order_by("next_attempt_at").values_list("pk", flat=True).first()
        pks = [probe] if probe is not None else []
    for pk in pks:
        doi_sync_task.delay(pk)
    doi_alert_overdue()
    return len(pks)


def doi_sync_waiting(*, limit: int = 500) -> int:
    """The registrar answered again: sync now every DOI that is waiting for its backoff after a passing failure,
    instead of each one after its own (by then often minutes long) wait. Returns how many were scheduled."""
    from repository.tasks import doi_sync_task

    now = timezone.now()
    waiting = list(DoiOutbox.objects.filter(synced_generation__lt=F("generation"), needs_attention=False,
                                            next_attempt_at__gt=now)
                   .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
                   .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
    DoiOutbox.objects.filter(pk__in=waiting).update(next_attempt_at=now)
    for pk in waiting:
        doi_sync_task.delay(pk)
    return len(waiting)


def _drain_waiting_on_commit() -> None:
    transaction.on_commit(doi_sync_waiting)


def doi_resync(pks) -> int:
    """After an admin fixed what the registrar refused (credentials, metadata): clear the flag and sync again,
    sending the current metadata even if nothing is pending."""
    from repository.tasks import doi_sync_task

    pks = list(pks)
    DoiOutbox.objects.filter(pk__in=pks).update(needs_attention=False, next_attempt_at=None, claimed_until=None,
                                                 generation=F("generation") + 1,
                                                 pending_since=Coalesce("pending_since", Now()))
    for pk in pks:
        doi_sync_task.delay(pk)
    return len(pks)


def _reconcile_retrying(row: DoiOutbox, provider: DoiProvider) -> str:
    """`_reconcile`, tried again after a passing failure within the same attempt: a sync makes two or three calls,
    and one 503 among them would otherwise cost the whole attempt its backoff. The reconcile starts again from
    what the registrar holds, so a write that was carried out before its answer was lost is not repeated.
    A read timeout is not tried again here: a hanging registrar would hold the worker several times as long."""
    for attempt in range(1, max(settings.DOI_SYNC_INNER_ATTEMPTS, 1) + 1):
        try:
            return _reconcile(row, provider)
        except DoiTimedOut:
            raise
        except DoiUnavailable:
            if attempt >= settings.DOI_SYNC_INNER_ATTEMPTS:
                raise
            # Full jitter: the workers that all failed at once do not all come back at once either.
            time.sleep(random.uniform(0, settings.DOI_SYNC_INNER_DELAY * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


def _reconcile(row: DoiOutbox, provider: DoiProvider) -> str:
    current = provider.get(row.doi)
    wanted = row.wanted_state
    if wanted == DoiState.DRAFT:
        if current is None:
            provider.reserve(row.doi, {})
            return DoiState.DRAFT
        return current.state
    if wanted == DoiState.DELETED:
        if current is None:
            return DoiState.DELETED
        if current.state != DoiState.DRAFT:
            raise DoiRejected(f"{row.doi} is {current.state} at the registrar and can no longer be deleted.")
        provider.delete_draft(row.doi)
        return DoiState.DELETED
    metadata, url = _payload(row)
    problems = validate_datacite_metadata(metadata)
    if problems:
        raise DoiRejected("The metadata does not validate against DataCite 4.5: " + "; ".join(problems[:5]))
    if wanted == DoiState.FINDABLE:
        provider.make_findable(row.doi, metadata, url, exists=current is not None)
    else:
        provider.make_registered(row.doi, metadata, url, exists=current is not None)
    return wanted


def doi_moved_targets(*, provider: DoiProvider | None = None) -> list[int]:
    """The resolvable DOIs (registered or findable, in sync) whose URL at the registrar is not the landing URL
    they would get now: the site moved (SITE_URL changed, e.g. `make run ADDRESS=` on another port). Asks the
    registrar about each, so this is for an operator's command, not for a request."""
    provider = provider or get_provider()
    rows = (DoiOutbox.objects.filter(wanted_state__in=[DoiState.FINDABLE, DoiState.REGISTERED],
                                     synced_generation__gte=F("generation"))
            .select_related("record", "version__record").order_by("pk"))
    moved = []
    for row in rows.iterator(chunk_size=500):
        if row.record is None or (row.kind == DoiOutbox.Kind.VERSION and row.version is None):
            continue
        current = provider.get(row.doi)
        if current is None or current.url != _target_url(row):
            moved.append(row.pk)
    return moved


def _target_url(row: DoiOutbox) -> str:
    if row.kind == DoiOutbox.Kind.CONCEPT:
        return settings.SITE_URL + reverse("repository:record_landing", kwargs={"record_id": row.record.public_id})
    version = row.version
    return settings.SITE_URL + reverse("repository:version_landing",
                                       kwargs={"record_id": version.record.public_id, "number": version.number})


def _payload(row: DoiOutbox) -> tuple[dict, str]:
    """The metadata and landing URL to send, built from the database as it is now (so a retry sends the latest)."""
    if row.kind == DoiOutbox.Kind.CONCEPT:
        return concept_datacite_metadata(row.record), _target_url(row)
    row.version = Version.objects.select_related("record").get(pk=row.version_id)
    return version_datacite_metadata(row.version), _target_url(row)


def _claim_seconds() -> float:
    # Long enough for the few calls one sync makes, each bounded by the client's timeouts, and the tries again
    # within the attempt (not after a read timeout, so at most one read timeout among them).
    inner_delays = settings.DOI_SYNC_INNER_DELAY * 2 ** max(settings.DOI_SYNC_INNER_ATTEMPTS, 1)
    return (settings.DATACITE_TIMEOUT + settings.DATACITE_CONNECT_TIMEOUT) * 6 + inner_delays + 60


def _claim(pk: int) -> DoiOutbox | None:
    """Mark the row as being synced by us for a while; None when another sync holds it. No database lock is
    held across the HTTP calls, so writers bumping the generation never wait on DataCite."""
    now = timezone.now()
    claimed = (DoiOutbox.objects.filter(pk=pk).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
               .update(claimed_until=now + timedelta(seconds=_claim_seconds())))
    return DoiOutbox.objects.select_related("record").get(pk=pk) if claimed else None


def _release(row: DoiOutbox) -> None:
    DoiOutbox.objects.filter(pk=row.pk).update(claimed_until=None)


def _release_after_database_error(row: DoiOutbox) -> None:
    """Give up the claim after a database error, on a new connection if the old one broke. If the database is
    still away this fails too and the claim lapses on its own."""
    try:
        if transaction.get_connection().in_atomic_block:
            return  # the caller's transaction is broken; its rollback is the caller's to make
        close_old_connections()
        _release(row)
    except DatabaseError:
        logger.warning("Could not release the sync claim of %s: the database is still unavailable", row.doi)


def _backoff(attempts: int) -> timedelta:
    seconds = min(settings.DOI_SYNC_RETRY_BASE * 2 ** max(attempts - 1, 0), settings.DOI_SYNC_RETRY_MAX)
    return timedelta(seconds=seconds)


def _record_failure(row: DoiOutbox, message: str, *, needs_attention: bool) -> None:
    attempts = row.attempts + 1
    DoiOutbox.objects.filter(pk=row.pk).update(
        claimed_until=None, attempts=attempts, last_error=message[:2000], needs_attention=needs_attention,
        next_attempt_at=None if needs_attention else timezone.now() + _backoff(attempts))


@transaction.atomic
def _record_success(row: DoiOutbox, generation: int, registrar_state: str) -> None:
    DoiOutbox.objects.filter(pk=row.pk, synced_generation__lt=generation).update(synced_generation=generation)
    DoiOutbox.objects.filter(pk=row.pk).update(
        claimed_until=None, attempts=0, last_error="", needs_attention=False, next_attempt_at=None,
        registrar_state=registrar_state, synced_at=timezone.now())
    # In sync now (unless changed meanwhile): the overdue clock and its alert start again at the next change.
    DoiOutbox.objects.filter(pk=row.pk, synced_generation__gte=F("generation")).update(
        pending_since=None, overdue_alerted_at=None)
    if row.kind == DoiOutbox.Kind.VERSION and registrar_state == DoiState.FINDABLE and row.version_id:
        _version_mark_published(row.version_id)
    row.refresh_from_db(fields=["generation", "synced_generation"])
    if row.is_pending:  # changed while we were talking to the registrar: go again
        _sync_on_commit(row)


def _version_mark_published(version_pk: int) -> None:
    """DataCite confirmed the version DOI: the version leaves `publishing`."""
    version = Version.objects.select_for_update().get(pk=version_pk)
    if version.state != Version.State.PUBLISHING:
        return
    version.state = Version.State.PUBLISHED
    version.save(update_fields=["state", "updated"])
    audit_event_append(actor=None, action="version.published", version=version, data={"doi": version.doi})
