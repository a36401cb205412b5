"""The review state machine: every state against every action, with who may act and what happens to the
version. Also the race of two moderators accepting at once."""

import threading

import pytest
from django.db import connection

from moderation import workflow
from moderation.models import ReviewEvent, ReviewRequest
from moderation.services import review_act
from repository.errors import Conflict, InvalidInput, PermissionDenied
from repository.models import ExecutionRun, Version

pytestmark = pytest.mark.django_db

S = ReviewRequest.State
ALLOWED = {  # (state, action) -> (new review state, new version state)
    (S.SUBMITTED, "accept"): (S.ACCEPTED, Version.State.PUBLISHING),  # published once DataCite confirms
    (S.SUBMITTED, "request_changes"): (S.CHANGES_REQUESTED, Version.State.DRAFT),
    (S.SUBMITTED, "decline"): (S.DECLINED, Version.State.DRAFT),
    (S.SUBMITTED, "cancel"): (S.CANCELLED, Version.State.DRAFT),
    (S.CHANGES_REQUESTED, "resubmit"): (S.RESUBMITTED, Version.State.IN_REVIEW),
    (S.CHANGES_REQUESTED, "decline"): (S.DECLINED, Version.State.DRAFT),
    (S.CHANGES_REQUESTED, "cancel"): (S.CANCELLED, Version.State.DRAFT),
    (S.RESUBMITTED, "accept"): (S.ACCEPTED, Version.State.PUBLISHING),
    (S.RESUBMITTED, "request_changes"): (S.CHANGES_REQUESTED, Version.State.DRAFT),
    (S.RESUBMITTED, "decline"): (S.DECLINED, Version.State.DRAFT),
    (S.RESUBMITTED, "cancel"): (S.CANCELLED, Version.State.DRAFT),
}
AUTHOR_ACTIONS = {"resubmit", "cancel"}


def bring_to(review, state, author, moderator):
    """Drive a fresh request into `state` through the workflow itself."""
    path = {
        S.SUBMITTED: [],
        S.CHANGES_REQUESTED: [("request_changes", moderator)],
        S.RESUBMITTED: [("request_changes", moderator), ("resubmit", author)],
        S.ACCEPTED: [("accept", moderator)],
        S.DECLINED: [("decline", moderator)],
        S.CANCELLED: [("cancel", author)],
    }[state]
    for action, actor in path:
        review = review_act(request_id=review.pk, action=action, actor=actor, comment="because")
    return review


@pytest.mark.parametrize("state", list(S.values))
@pytest.mark.parametrize("action", list(workflow.TRANSITIONS))
def test_every_state_against_every_action(review, author, community_moderator, state, action):
    review = bring_to(review, state, author, community_moderator)
    actor = author if action in AUTHOR_ACTIONS else community_moderator
    events_before = ReviewEvent.objects.filter(request=review).count()

    if (state, action) in ALLOWED:
        review = review_act(request_id=review.pk, action=action, actor=actor, comment="a reason")
        new_review_state, new_version_state = ALLOWED[(state, action)]
        assert review.state == new_review_state
        assert Version.objects.get(pk=review.version_id).state == new_version_state
        event = ReviewEvent.objects.filter(request=review).last()
        assert (event.from_state, event.to_state, event.actor, event.comment) == (state, new_review_state, actor,
                                                                                  "a reason")
    else:
        with pytest.raises(Conflict):
            review_act(request_id=review.pk, action=action, actor=actor, comment="a reason")
        assert ReviewRequest.objects.get(pk=review.pk).state == state
        assert ReviewEvent.objects.filter(request=review).count() == events_before


@pytest.mark.parametrize("action", ["accept", "request_changes", "decline"])
def test_authors_cannot_moderate_their_own_submission_even_as_moderators(review, author, community, action):
    community.moderators.add(author)

    with pytest.raises(PermissionDenied):
        review_act(request_id=review.pk, action=action, actor=author, comment="x")
    assert ReviewRequest.objects.get(pk=review.pk).state == S.SUBMITTED


@pytest.mark.parametrize("action", ["resubmit", "cancel"])
def test_moderators_cannot_take_the_authors_actions(review, author, community_moderator, action):
    review = bring_to(review, S.CHANGES_REQUESTED, author, community_moderator)

    with pytest.raises(PermissionDenied):
        review_act(request_id=review.pk, action=action, actor=community_moderator)


def test_a_moderator_of_another_community_cannot_decide(review, other_community_moderator):
    with pytest.raises(PermissionDenied):
        review_act(request_id=review.pk, action="accept", actor=other_community_moderator)


def test_global_moderators_decide_in_every_community(review, global_moderator):
    assert review_act(request_id=review.pk, action="accept", actor=global_moderator).state == S.ACCEPTED


@pytest.mark.parametrize("action", ["request_changes", "decline"])
def test_a_comment_is_required_to_send_back_or_decline(review, community_moderator, action):
    with pytest.raises(InvalidInput) as raised:
        review_act(request_id=review.pk, action=action, actor=community_moderator, comment="  ")
    assert "comment" in raised.value.field_errors


def test_an_unknown_action_is_invalid_input(review, community_moderator):
    with pytest.raises(InvalidInput):
        review_act(request_id=review.pk, action="approve", actor=community_moderator)


def test_resubmitting_queues_a_new_verification_run(review, author, community_moderator):
    review = bring_to(review, S.CHANGES_REQUESTED, author, community_moderator)
    ExecutionRun.objects.filter(version=review.version).update(status="finished", verdict="reproduced")

    review_act(request_id=review.pk, action="resubmit", actor=author)

    assert ExecutionRun.objects.filter(version=review.version).count() == 2


def test_changes_requested_reopens_the_draft_for_editing(review, author, community_moderator):
    from repository.services.drafts import draft_update

    bring_to(review, S.CHANGES_REQUESTED, author, community_moderator)

    version = draft_update(version=review.version, actor=author, metadata={"title": "Fixed title"})
    assert version.title == "Fixed title"


def test_the_checklist_is_kept_with_the_decision(review, community_moderator):
    review = review_act(request_id=review.pk, action="accept", actor=community_moderator,
                        checklist=["in_scope", "license", "not-a-real-item"])

    assert review.checklist == {"in_scope": True, "license": True}


@pytest.mark.django_db(transaction=True)
def test_two_moderators_accepting_at_once_publish_once(author, community, community_moderator, global_moderator):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite serialises whole transactions)")
    from tests.factories import submitted_review

    review = submitted_review(author, community)
    barrier = threading.Barrier(2)
    outcomes = []

    def accept(moderator):
        from django.db import connection as thread_connection

        barrier.wait()
        try:
            review_act(request_id=review.pk, action="accept", actor=moderator)
            outcomes.append("accepted")
        except Conflict as exc:
            outcomes.append(f"conflict: {exc.detail}")
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=accept, args=(m,)) for m in (community_moderator, global_moderator)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes)[0] == "accepted" and sorted(outcomes)[1].startswith("conflict: The request is accepted")
    assert ReviewEvent.objects.filter(request=review, to_state=S.ACCEPTED).count() == 1
    from repository.models import AuditEvent

    assert AuditEvent.objects.filter(version=review.version, action="version.publish").count() == 1
