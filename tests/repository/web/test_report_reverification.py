"""The public reproducibility report of a published version: its latest result and date, what changed and since
when, and the history of re-verifications (services/reverification.py, templates/repository/run_report.html)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from repository.models import ExecutionRun
from repository.services.runs import _finish, run_mark_error, run_request
from tests.factories import UserFactory, published_version

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_queue")]


@pytest.fixture
def published(db):
    moderator = UserFactory(username="mod", email="mod@example.org")
    moderator.groups.add(Group.objects.get_or_create(name="moderators")[0])
    return published_version(UserFactory(username="owner", email="owner@example.org"), moderator)


def days_ago(days: int) -> str:
    return (timezone.now() - timedelta(days=days)).date().isoformat()


def reverify(version, days: int, **finish) -> ExecutionRun:
    run = run_request(version=version, requested_by=None, purpose="reverification")
    if finish:
        _finish(run, **finish)
    ExecutionRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days))
    return ExecutionRun.objects.get(pk=run.pk)


def submission_run(version, days: int) -> ExecutionRun:
    run = ExecutionRun.objects.create(version=version, runner="local", notebook_path=version.notebook_path,
                                      status="finished", verdict="reproduced", message="All outputs identical")
    ExecutionRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=days))
    return ExecutionRun.objects.get(pk=run.pk)


def report(client, run) -> str:
    response = client.get(reverse("repository:run_report", kwargs={"run_id": run.run_id}))
    assert response.status_code == 200
    return response.content.decode()


def test_the_public_report_says_the_latest_result_what_changed_and_the_history(client, published):
    submission_run(published, 200)
    reverify(published, 100, verdict="reproduced", message="All outputs identical")
    failed = reverify(published, 10, verdict="execution_failed", message="data reference data/x.csv answers 404")

    html = report(client, failed)  # anyone, not signed in

    assert "Latest result: <strong>execution failed</strong>\n    on <time" in html
    assert (f"Reproduced on {days_ago(100)}; not reproducible since {days_ago(10)}: data reference data/x.csv "
            "answers 404.") in html
    assert f"{days_ago(10)}</time>\n      (re-verification):" in html
    assert f"{days_ago(200)}</time>\n      (submission):" in html
    assert 'id="finished-at">' + days_ago(10) in html


def test_an_image_gone_from_the_registry_shows_on_the_last_report(client, published):
    first = submission_run(published, 100)
    run = run_request(version=published, requested_by=None, purpose="reverification")
    run_mark_error(run_pk=run.pk, message="The registry does not have this image", code="image_not_found")

    html = report(client, first)

    today = timezone.now().date().isoformat()
    assert "Latest result: <strong>could not be re-run</strong>" in html
    assert "(this report is of an earlier run)" in html
    assert (f"Reproduced on {days_ago(100)}; not reproducible since {today}: the image is no longer in its "
            "registry.") in html

    landing = client.get(f"/records/{published.record.public_id}/").content.decode()
    assert 'Latest re-verification on <time datetime="' in landing
    assert f"{today}</time>: could not be re-run." in landing
    assert "not reproducible since" in landing and "the image is no longer in its registry" in landing
    badge = client.get(reverse("repository:record_badge", kwargs={"record_id": published.record.public_id}))
    assert f"not reproducible {today}" in badge.content.decode()
