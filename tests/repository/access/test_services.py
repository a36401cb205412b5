"""The access services: every request state x every answer, grants and their revocation as the policy sees
them, share links (made, redeemed, counted, revoked, expired), audit events and e-mails."""

import datetime

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import mail
from django.utils import timezone

from repository.access.http import live_share_link, token_sha256
from repository.access.models import AccessGrant, AccessRequest, ShareLink
from repository.access.policy import can_read_files
from repository.access.services import (
    access_grant_revoke,
    access_request_accept,
    access_request_create,
    access_request_decline,
    share_link_create,
    share_link_redeem,
    share_link_revoke,
)
from repository.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from repository.models import AuditEvent, FileAccess
from tests.factories import UserFactory, demo_draft, published_version
from tests.repository.access.conftest import restrict

pytestmark = pytest.mark.django_db

MESSAGE = "I referee the paper (manuscript 2027-0042) and need the measurements."


@pytest.fixture
def mails(django_capture_on_commit_callbacks):
    """Run the on-commit callbacks (the e-mails) of what the test does inside the block, as a commit would."""
    mail.outbox.clear()
    return lambda: django_capture_on_commit_callbacks(execute=True)


def _ask(record, reader, message=MESSAGE) -> AccessRequest:
    return access_request_create(record=record, requester=reader, message=message)


def _in_state(state: str, record, reader, owner) -> AccessRequest:
    access_request = _ask(record, reader)
    if state == "accepted":
        access_request_accept(request=access_request, actor=owner)
    elif state == "declined":
        access_request_decline(request=access_request, actor=owner)
    access_request.refresh_from_db()
    return access_request


# Asking

def test_a_reader_asks_and_the_owners_are_emailed_after_commit(restricted, owner, reader, mails):
    co_owner = UserFactory(username="co-owner")
    restricted.record.owners.add(co_owner)
    with mails():
        access_request = _ask(restricted.record, reader)
        assert mail.outbox == []  # nothing is sent before the transaction commits
    assert (access_request.number, access_request.state) == (1, AccessRequest.State.PENDING)
    [message] = mail.outbox
    assert sorted(message.to) == sorted([owner.email, co_owner.email])
    assert "Access request" in message.subject and restricted.title in message.subject
    assert MESSAGE in message.body and "Rita Reader (reader)" in message.body
    assert f"/records/{restricted.record.public_id}/access/" in message.body
    event = AuditEvent.objects.get(action="access.request")
    assert (event.actor, event.record, event.data) == (reader, restricted.record, {"number": 1})


def test_a_second_pending_request_is_a_conflict_that_says_so(restricted, reader):
    _ask(restricted.record, reader)
    with pytest.raises(Conflict, match="request 1 .* still waiting"):
        _ask(restricted.record, reader, "Again, please.")
    assert AccessRequest.objects.count() == 1


def test_requests_are_numbered_per_record(restricted, reader, owner, moderator):
    other = restrict(published_version(owner, moderator))
    first = _ask(restricted.record, reader)
    second = _ask(restricted.record, UserFactory())
    elsewhere = _ask(other.record, reader)
    assert (first.number, second.number, elsewhere.number) == (1, 2, 1)


def test_after_a_decline_the_reader_may_ask_again(restricted, reader, owner):
    _in_state("declined", restricted.record, reader, owner)
    assert _ask(restricted.record, reader, "I now have the consortium's agreement.").number == 2


def test_an_owner_cannot_request_their_own_record(restricted, owner):
    with pytest.raises(Conflict, match="You own this record"):
        _ask(restricted.record, owner)


def test_anonymous_readers_cannot_ask(restricted):
    with pytest.raises(PermissionDenied, match="Sign in"):
        _ask(restricted.record, AnonymousUser())


@pytest.mark.parametrize("access", [FileAccess.OPEN, FileAccess.EMBARGOED])
def test_there_is_nothing_to_ask_for_when_no_version_is_restricted(owner, moderator, reader, access):
    version = published_version(owner, moderator)
    restrict(version, access, until=datetime.date(2099, 1, 1) if access == FileAccess.EMBARGOED else None)
    with pytest.raises(Conflict, match="No version of this record has restricted files"):
        _ask(version.record, reader)


def test_an_earlier_restricted_version_can_be_asked_for_while_the_latest_is_open(restricted, owner, moderator,
                                                                                   reader):
    from repository.services.new_versions import version_new_draft
    from tests.factories import accept, sync_pending

    accept(version_new_draft(record=restricted.record, actor=owner), moderator)
    sync_pending()
    assert restricted.record.versions.filter(state="published").count() == 2  # v2 is open, v1 restricted
    assert _ask(restricted.record, reader).state == AccessRequest.State.PENDING


def test_a_reader_with_access_already_need_not_ask(restricted, reader, owner):
    _in_state("accepted", restricted.record, reader, owner)
    with pytest.raises(Conflict, match="access to this record's files already"):
        _ask(restricted.record, reader)


@pytest.mark.parametrize("message, expected", [("   ", "Say who you are"), ("x" * 2001, "At most 2000")])
def test_the_message_is_required_and_bounded(restricted, reader, message, expected):
    with pytest.raises(InvalidInput) as error:
        _ask(restricted.record, reader, message)
    assert expected in error.value.field_errors["message"][0]


# Answering: every state x every action

@pytest.mark.parametrize("state", ["pending", "accepted", "declined"])
@pytest.mark.parametrize("action", ["accept", "decline"])
def test_every_state_and_answer(restricted, owner, reader, state, action):
    access_request = _in_state(state, restricted.record, reader, owner)
    answer = access_request_accept if action == "accept" else access_request_decline
    if state != "pending":
        with pytest.raises(Conflict, match=f"Request 1 was {state} already"):
            answer(request=access_request, actor=owner)
        access_request.refresh_from_db()
        assert access_request.state == state
        return
    answer(request=access_request, actor=owner)
    access_request.refresh_from_db()
    assert access_request.state == ("accepted" if action == "accept" else "declined")
    assert (access_request.decided_by, access_request.decided_at is not None) == (owner, True)
    assert AccessGrant.objects.filter(user=reader, revoked_at__isnull=True).exists() == (action == "accept")
    assert can_read_files(reader, restricted) == (action == "accept")


def test_accepting_lets_the_requester_in_until_the_day_and_tells_them(restricted, owner, reader, mails):
    access_request = _ask(restricted.record, reader)
    assert not can_read_files(reader, restricted)
    until = timezone.now().date() + datetime.timedelta(days=30)
    with mails():
        grant = access_request_accept(request=access_request, actor=owner, until=until)
    assert (grant.user, grant.until, grant.granted_by, grant.request) == (reader, until, owner, access_request)
    assert can_read_files(reader, restricted)
    assert not can_read_files(reader, restricted, on=until + datetime.timedelta(days=1))
    [message] = mail.outbox
    assert message.to == [reader.email] and "Access granted" in message.subject
    assert until.isoformat() in message.body
    event = AuditEvent.objects.get(action="access.request.accept")
    assert event.data["until"] == until.isoformat() and event.actor == owner


def test_declining_tells_the_requester_why(restricted, owner, reader, mails):
    access_request = _ask(restricted.record, reader)
    with mails():
        access_request_decline(request=access_request, actor=owner, reason="Only for consortium members.")
    [message] = mail.outbox
    assert message.to == [reader.email] and "declined" in message.subject
    assert "Only for consortium members." in message.body
    assert AuditEvent.objects.get(action="access.request.decline").data["reason"] == "Only for consortium members."
    assert not can_read_files(reader, restricted)


def test_only_owners_answer(restricted, reader, moderator):
    access_request = _ask(restricted.record, reader)
    for actor in (reader, UserFactory(), moderator, AnonymousUser()):
        with pytest.raises(PermissionDenied):
            access_request_accept(request=access_request, actor=actor)
        with pytest.raises(PermissionDenied):
            access_request_decline(request=access_request, actor=actor)
    access_request.refresh_from_db()
    assert access_request.state == AccessRequest.State.PENDING


def test_a_day_that_has_passed_is_refused(restricted, owner, reader):
    access_request = _ask(restricted.record, reader)
    with pytest.raises(InvalidInput) as error:
        access_request_accept(request=access_request, actor=owner, until=datetime.date(2020, 1, 1))
    assert "until" in error.value.field_errors
    access_request.refresh_from_db()
    assert access_request.state == AccessRequest.State.PENDING and not AccessGrant.objects.exists()


def test_accepting_a_new_request_after_a_grant_ended_replaces_that_grant(restricted, owner, reader):
    # The grant ended yesterday but was never revoked: the reader asks again and is let in again.
    first = AccessGrant.objects.create(record=restricted.record, user=reader, granted_by=owner,
                                       until=timezone.now().date() - datetime.timedelta(days=1))
    access_request = _ask(restricted.record, reader)
    grant = access_request_accept(request=access_request, actor=owner)
    first.refresh_from_db()
    assert first.revoked_at is not None and grant.revoked_at is None and grant.until is None
    assert AccessGrant.objects.filter(record=restricted.record, user=reader, revoked_at__isnull=True).count() == 1


# Revoking grants

def test_a_revoked_grant_stops_access(restricted, owner, reader):
    grant = access_request_accept(request=_ask(restricted.record, reader), actor=owner)
    assert can_read_files(reader, restricted)
    access_grant_revoke(grant=grant, actor=owner)
    assert not can_read_files(reader, restricted)
    assert AuditEvent.objects.filter(action="access.grant.revoke", record=restricted.record).count() == 1
    with pytest.raises(Conflict, match="revoked already"):
        access_grant_revoke(grant=grant, actor=owner)


def test_only_owners_revoke_grants(restricted, owner, reader):
    grant = access_request_accept(request=_ask(restricted.record, reader), actor=owner)
    with pytest.raises(PermissionDenied):
        access_grant_revoke(grant=grant, actor=reader)
    assert can_read_files(reader, restricted)


# Share links

def test_a_share_link_keeps_only_the_hash_of_its_token_and_lets_its_holders_read(restricted, owner):
    link, token = share_link_create(record=restricted.record, actor=owner, label="Referee 2")
    assert len(token) >= 40 and link.token_sha256 == token_sha256(token) and token not in str(link.__dict__)
    assert link.label == "Referee 2" and link.expires_at is None
    event = AuditEvent.objects.get(action="access.link.create")
    assert token not in str(event.data) and event.data["label"] == "Referee 2"
    assert can_read_files(AnonymousUser(), restricted, shared_record_ids=frozenset({link.record_id}))


def test_redeeming_counts_each_use(restricted, owner):
    link, token = share_link_create(record=restricted.record, actor=owner)
    assert share_link_redeem(token=token).uses == 1
    redeemed = share_link_redeem(token=token)
    assert redeemed.uses == 2 and redeemed.last_used_at is not None
    with pytest.raises(NotFound):
        share_link_redeem(token=token + "x")


def test_a_revoked_link_opens_nothing(restricted, owner):
    link, token = share_link_create(record=restricted.record, actor=owner)
    share_link_revoke(link=link, actor=owner)
    assert live_share_link(token) is None
    with pytest.raises(NotFound, match="revoked"):
        share_link_redeem(token=token)
    with pytest.raises(Conflict, match="revoked already"):
        share_link_revoke(link=link, actor=owner)
    link.refresh_from_db()
    assert link.uses == 0 and link.state == "revoked"


def test_a_link_works_through_its_last_day_and_then_expires(restricted, owner):
    today = timezone.now().date()
    link, token = share_link_create(record=restricted.record, actor=owner, expires=today)
    assert link.expires_at == datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time.min,
                                                        tzinfo=datetime.UTC)
    assert share_link_redeem(token=token).uses == 1
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    with pytest.raises(NotFound):
        share_link_redeem(token=token)
    link.refresh_from_db()
    assert link.state == "expired"


def test_share_link_input_is_checked(restricted, owner, reader):
    with pytest.raises(InvalidInput) as error:
        share_link_create(record=restricted.record, actor=owner, expires=datetime.date(2020, 1, 1))
    assert "expires" in error.value.field_errors
    with pytest.raises(InvalidInput) as error:
        share_link_create(record=restricted.record, actor=owner, label="x" * 201)
    assert "label" in error.value.field_errors
    with pytest.raises(PermissionDenied):
        share_link_create(record=restricted.record, actor=reader)
    link, _ = share_link_create(record=restricted.record, actor=owner)
    with pytest.raises(PermissionDenied):
        share_link_revoke(link=link, actor=reader)
    assert ShareLink.objects.count() == 1


def test_a_link_to_an_open_record_would_open_nothing(owner, moderator):
    version = published_version(owner, moderator)
    with pytest.raises(Conflict, match="would open nothing"):
        share_link_create(record=version.record, actor=owner)


def test_a_draft_can_be_shared_before_it_is_published(owner):
    draft = demo_draft(owner)
    link, _ = share_link_create(record=draft.record, actor=owner, label="Referees")
    assert can_read_files(AnonymousUser(), draft, shared_record_ids=frozenset({draft.record_id}))
    assert not can_read_files(AnonymousUser(), draft)
