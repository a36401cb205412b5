"""Re-verification of published versions: which are due, the daily budget, the e-mail when the result changes,
and what the landing page says (services/reverification.py)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from moderation.models import Community, ReviewRequest
from repository.errors import ImageNotFound
from repository.models import ExecutionRun
from repository.runners.base import RunnerUnavailable
from repository.services.reverification import reverify_due, verification_history
from repository.services.runs import InfrastructureError, _finish, error_code_of, run_mark_error, run_request
from tests.factories import UserFactory, published_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def moderator(db):
    user = UserFactory(username="global-mod", email="mod@example.org")
    user.groups.add(Group.objects.get_or_create(name="moderators")[0])
    return user


@pytest.fixture
def owner(db):
    return UserFactory(username="owner", email="owner@example.org")


def finished_run(version, verdict: str, *, days_ago: float, message: str = "", purpose="submission"):
    run = ExecutionRun.objects.create(version=version, runner="local", notebook_path=version.notebook_path,
                                      status="finished", verdict=verdict, message=message, purpose=purpose)
    ExecutionRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days_ago))
    return ExecutionRun.objects.get(pk=run.pk)


def test_versions_last_verified_before_the_interval_are_queued_oldest_first(owner, moderator, settings, no_queue):
    settings.REVERIFY_INTERVAL_DAYS, settings.REVERIFY_PER_DAY = 90, 10
    recent, old, older = (published_version(owner, moderator, title=t) for t in ("Recent", "Old", "Older"))
    finished_run(recent, "reproduced", days_ago=10)
    finished_run(old, "reproduced", days_ago=100)
    finished_run(older, "reproduced", days_ago=200)

    lines = reverify_due()

    assert [line.split(":")[0] for line in lines] == [f"{older.record.public_id} v1", f"{old.record.public_id} v1"]
    queued = ExecutionRun.objects.filter(status="queued", purpose="reverification")
    assert {run.version_id for run in queued} == {old.pk, older.pk}
    assert reverify_due() == []  # already queued: not twice


def test_at_most_the_daily_budget_is_queued(owner, moderator, settings, no_queue):
    settings.REVERIFY_INTERVAL_DAYS, settings.REVERIFY_PER_DAY = 90, 1
    for title in ("A", "B"):
        finished_run(published_version(owner, moderator, title=title), "reproduced", days_ago=120)

    assert len(reverify_due()) == 1
    assert reverify_due() == []  # the day's budget is spent


def test_a_changed_result_emails_owners_and_moderators_and_the_page_says_since_when(
        owner, moderator, settings, no_queue, mailoutbox, client, django_capture_on_commit_callbacks):
    version = published_version(owner, moderator)
    community_moderator = UserFactory(username="cm", email="cm@example.org")
    community = Community.objects.create(slug="physics", name="Physics")
    community.moderators.add(community_moderator)
    ReviewRequest.objects.create(version=version, community=community, submitted_by=owner,
                                 state=ReviewRequest.State.ACCEPTED)
    finished_run(version, "reproduced", days_ago=100)
    run = run_request(version=version, requested_by=None, purpose="reverification")
    run.claim = ""

    with django_capture_on_commit_callbacks(execute=True):
        _finish(run, verdict="execution_failed", message="data reference data/x.csv answers 404")

    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == ["cm@example.org", "mod@example.org", "owner@example.org"]
    today = timezone.now().date().isoformat()
    history = verification_history(version)
    assert history.changed
    assert history.summary.endswith(f"not reproducible since {today}: data reference data/x.csv answers 404")
    page = client.get(f"/records/{version.record.public_id}/").content.decode()
    assert "not reproducible since" in page and "answers 404" in page and "Last verified on" in page


def test_a_changed_verdict_within_reproducible_emails_too(owner, moderator, no_queue, mailoutbox,
                                                           django_capture_on_commit_callbacks):
    version = published_version(owner, moderator)
    finished_run(version, "reproduced", days_ago=100)
    run = run_request(version=version, requested_by=None, purpose="reverification")

    with django_capture_on_commit_callbacks(execute=True):
        _finish(run, verdict="reproduced_with_differences", message="Reproduced within tolerance")

    today = timezone.now().date().isoformat()
    assert len(mailoutbox) == 1
    body = mailoutbox[0].body
    assert f"Before: reproduced on {(timezone.now() - timedelta(days=100)).date().isoformat()}" in body
    assert f"Now: reproduced with differences on {today}" in body
    summary = verification_history(version).summary
    assert summary.startswith(f"reproduced with differences on {today}; reproducible since")


def test_an_unchanged_verdict_sends_no_mail(owner, moderator, no_queue, mailoutbox,
                                            django_capture_on_commit_callbacks):
    version = published_version(owner, moderator)
    finished_run(version, "reproduced", days_ago=100)
    run = run_request(version=version, requested_by=None, purpose="reverification")

    with django_capture_on_commit_callbacks(execute=True):
        _finish(run, verdict="reproduced", message="All outputs identical")

    assert mailoutbox == []


def move_back(run, days):
    ExecutionRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days),
                                                  queued_at=timezone.now() - timedelta(days=days))


def test_an_image_gone_from_its_registry_is_news_and_is_not_retried_every_hour(
        owner, moderator, settings, no_queue, mailoutbox, django_capture_on_commit_callbacks):
    settings.REVERIFY_INTERVAL_DAYS, settings.REVERIFY_PER_DAY, settings.REVERIFY_ERROR_RETRY_DAYS = 90, 1, 7
    gone, other = published_version(owner, moderator, title="Gone"), published_version(owner, moderator, title="Other")
    finished_run(gone, "reproduced", days_ago=200)
    finished_run(other, "reproduced", days_ago=150)
    assert reverify_due()[0].startswith(f"{gone.record.public_id} v1")  # the oldest goes first
    run = ExecutionRun.objects.get(version=gone, purpose="reverification")

    with django_capture_on_commit_callbacks(execute=True):
        run_mark_error(run_pk=run.pk, message="The registry does not have this image: manifest unknown",
                       code="image_not_found")  # what the task does after its retries

    today = timezone.now().date().isoformat()
    assert len(mailoutbox) == 1 and "Now: could not be re-run" in mailoutbox[0].body
    history = verification_history(gone)
    assert history.changed
    assert history.summary == (f"reproduced on {(timezone.now() - timedelta(days=200)).date().isoformat()}; "
                               f"not reproducible since {today}: the image is no longer in its registry")
    assert [entry["label"] for entry in history.entries] == ["could not be re-run", "reproduced"]

    move_back(run, days=1.5)  # the next day's budget: the version that cannot be re-run does not take it again
    assert [line.split(":")[0] for line in reverify_due()] == [f"{other.record.public_id} v1"]
    other_run = ExecutionRun.objects.get(version=other, status="queued")
    ExecutionRun.objects.filter(pk=other_run.pk).update(status="finished", verdict="reproduced")
    move_back(other_run, days=1.1)
    assert reverify_due() == []  # within the error back-off
    move_back(run, days=8)
    assert [line.split(":")[0] for line in reverify_due()] == [f"{gone.record.public_id} v1"]


def test_an_operators_transient_error_is_kept_but_changes_nothing(
        owner, moderator, settings, no_queue, mailoutbox, django_capture_on_commit_callbacks):
    settings.REVERIFY_INTERVAL_DAYS, settings.REVERIFY_PER_DAY = 90, 10
    version = published_version(owner, moderator)
    finished_run(version, "reproduced", days_ago=100)
    reverify_due()
    run = ExecutionRun.objects.get(version=version, purpose="reverification")

    with django_capture_on_commit_callbacks(execute=True):
        run_mark_error(run_pk=run.pk, message="The image registry could not be reached",
                       code="image_registry_unreachable")

    assert mailoutbox == []
    history = verification_history(version)
    assert not history.changed
    assert history.summary == f"reproduced on {(timezone.now() - timedelta(days=100)).date().isoformat()}"
    assert history.entries[0]["label"].startswith("could not be run (an operator's problem")
    assert reverify_due() == []  # an attempt: not queued again the next hour


def test_the_task_keeps_the_image_errors_code():
    try:
        try:
            try:
                raise ImageNotFound("manifest unknown")
            except ImageNotFound as exc:
                raise RunnerUnavailable(str(exc)) from exc
        except RunnerUnavailable as exc:
            raise InfrastructureError(str(exc)) from exc
    except InfrastructureError as exc:
        assert error_code_of(exc) == "image_not_found"
    assert error_code_of(InfrastructureError("bwrap missing")) == ""
