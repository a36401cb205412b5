"""Submitting from the draft page and reading the reproducibility report in the browser."""

import pytest
from django.urls import reverse

from repository.models import ExecutionRun, Version
from repository.services.runs import run_execute, run_request
from tests.factories import demo_draft
from tests.sandbox import needs_sandbox

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_queue")]


def test_a_complete_draft_offers_submission_and_submitting_queues_a_run(client, user):
    version = demo_draft(user)
    client.force_login(user)
    page = client.get(reverse("repository:draft_detail", kwargs={"record_id": version.record.public_id}))
    assert "Submit for review" in page.content.decode()

    response = client.post(reverse("repository:draft_submit", kwargs={"record_id": version.record.public_id}),
                           follow=True)

    html = response.content.decode()
    assert "Submitted for review" in html and "Queued" in html
    assert 'data-run-url="/api/runs/' in html  # the page polls the run's status
    assert Version.objects.get(pk=version.pk).state == "in_review"


def test_an_incomplete_draft_cannot_be_submitted_from_the_page(client, user):
    from repository.services.drafts import record_create

    version = record_create(owner=user, metadata={"title": "Incomplete"})
    client.force_login(user)

    response = client.post(reverse("repository:draft_submit", kwargs={"record_id": version.record.public_id}),
                           follow=True)

    assert "not complete" in response.content.decode()
    assert Version.objects.get(pk=version.pk).state == "draft"


def test_someone_else_cannot_submit_or_rerun(client, user, other_user):
    version = demo_draft(user)
    client.force_login(other_user)
    record_id = version.record.public_id

    assert client.post(reverse("repository:draft_submit", kwargs={"record_id": record_id})).status_code == 404
    assert client.post(reverse("repository:draft_rerun", kwargs={"record_id": record_id})).status_code == 404


@needs_sandbox
def test_the_report_page_shows_a_differing_cell_side_by_side_and_escapes_outputs(client, user):
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)
    run = run_execute(run_pk=run.pk)
    # Pretend the stored output had been edited: the report is what the page renders.
    report = run.report
    report["cells"][1]["status"] = "differs"
    report["cells"][1]["outputs"] = [{"output_type": "stream", "mime": "text/plain", "status": "differs",
                                      "expected": "<script>alert(1)</script> 1.7e-05", "actual": "1.650e-05",
                                      "diff": "-1.7e-05\n+1.650e-05"}]
    ExecutionRun.objects.filter(pk=run.pk).update(report=report)
    client.force_login(user)

    html = client.get(reverse("repository:run_report", kwargs={"run_id": run.run_id})).content.decode()

    assert "Reproducibility report" in html and "Reproduced" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "Submitted" in html and "Re-executed" in html and "+1.650e-05" in html
    assert "was recorded but not pulled" in html and "kernel environment of this server, not the pinned image" in html


def test_the_report_page_is_404_for_other_users(client, user, other_user):
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)
    client.force_login(other_user)

    assert client.get(reverse("repository:run_report", kwargs={"run_id": run.run_id})).status_code == 404


def test_a_running_runs_page_shows_the_pull_and_polls_for_more(client, user):
    from repository.services.runs import _RunObserver

    run = run_request(version=demo_draft(user), requested_by=user)
    ExecutionRun.objects.filter(pk=run.pk).update(status=ExecutionRun.Status.RUNNING)
    _RunObserver(run.pk).pull_progress(1024 * 1024, 4 * 1024 * 1024)
    client.force_login(user)

    html = client.get(reverse("repository:run_report", kwargs={"run_id": run.run_id})).content.decode()

    assert f'id="pull-progress" data-run-url="/api/runs/{run.run_id}"' in html
    assert "1.0\xa0MB of 4.0\xa0MB" in html
    assert 'src="/static/repository/run_progress.js"' in html and "<script>" not in html  # CSP: no inline script
