"""Re-verification of published versions: which are due, the daily budget, the e-mail when the result changes,
and what the landing page says (services/reverification.py)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from moderation.models import Community, ReviewRequest
from repository.models import ExecutionRun
from repository.services.reverification import reverify_due, verification_history
from repository.services.runs import _finish, run_request
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


def test_an_unchanged_result_sends_no_mail(owner, moderator, no_queue, mailoutbox,
                                           django_capture_on_commit_callbacks):
    version = published_version(owner, moderator)
    finished_run(version, "reproduced", days_ago=100)
    run = run_request(version=version, requested_by=None, purpose="reverification")

    with django_capture_on_commit_callbacks(execute=True):
        _finish(run, verdict="reproduced_with_differences", message="Reproduced within tolerance")

    assert mailoutbox == []
    summary = verification_history(version).summary
    assert summary.startswith(f"reproduced with differences on {timezone.now().date().isoformat()}; reproducible since")
