"""Submitting, listing runs and reading a report through the API, with who may see what."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from repository.models import ExecutionRun
from repository.services.runs import run_execute
from repository.services.tokens import token_create
from tests.factories import demo_draft
from tests.sandbox import needs_sandbox

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_queue")]


def client_for(user) -> APIClient:
    _, raw = token_create(user=user, name="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def moderator(db):
    from tests.factories import UserFactory

    user = UserFactory()
    user.groups.add(Group.objects.get_or_create(name="moderators")[0])
    return user


def test_submit_answers_202_and_the_run_is_listed(api, user):
    record_id = demo_draft(user).record.public_id

    response = api.post(f"/api/records/{record_id}/draft/actions/submit")

    assert response.status_code == 202, response.content
    assert response.json()["state"] == "in_review"
    runs = api.get(f"/api/records/{record_id}/draft/runs").json()
    assert [run["status"] for run in runs] == ["queued"]
    assert runs[0]["links"]["self"].endswith(f"/api/runs/{runs[0]['id']}")


def test_submit_of_an_incomplete_draft_lists_what_is_missing(api):
    record_id = api.post("/api/records", {"title": "x"}, format="json").json()["id"]

    response = api.post(f"/api/records/{record_id}/draft/actions/submit")

    assert response.status_code == 400
    missing = {e["field"]: e["messages"] for e in response.json()["errors"]}["missing"]
    assert "a license" in missing and "a notebook (.ipynb) file" in missing


def test_a_submitted_draft_can_no_longer_be_edited(api, user):
    record_id = demo_draft(user).record.public_id
    api.post(f"/api/records/{record_id}/draft/actions/submit")

    assert api.put(f"/api/records/{record_id}/draft", {"title": "changed"}, format="json").status_code == 409
    upload = api.put(f"/api/records/{record_id}/draft/files/new.txt", b"x", content_type="application/octet-stream")
    assert upload.status_code == 409


def test_rerun_while_a_run_is_queued_is_409(api, user):
    record_id = demo_draft(user).record.public_id
    api.post(f"/api/records/{record_id}/draft/actions/submit")

    assert api.post(f"/api/records/{record_id}/draft/runs").status_code == 409


def test_moderators_see_submitted_drafts_and_their_runs_but_not_unsubmitted_ones(user, moderator):
    version = demo_draft(user)
    record_id = version.record.public_id
    as_moderator = client_for(moderator)
    assert as_moderator.get(f"/api/records/{record_id}/draft/runs").status_code == 404

    client_for(user).post(f"/api/records/{record_id}/draft/actions/submit")

    runs = as_moderator.get(f"/api/records/{record_id}/draft/runs")
    assert runs.status_code == 200
    run_id = runs.json()[0]["id"]
    assert as_moderator.get(f"/api/runs/{run_id}").status_code == 200
    # Seeing is not editing.
    assert as_moderator.put(f"/api/records/{record_id}/draft", {"title": "x"}, format="json").status_code == 403


def test_a_run_is_404_for_other_users(user, other_user):
    version = demo_draft(user)
    client_for(user).post(f"/api/records/{version.record.public_id}/draft/actions/submit")
    run = ExecutionRun.objects.get()

    assert client_for(other_user).get(f"/api/runs/{run.run_id}").status_code == 404
    assert APIClient().get(f"/api/runs/{run.run_id}").status_code == 401


@needs_sandbox
def test_a_finished_run_shows_its_report_and_executed_notebook(api, user):
    record_id = demo_draft(user).record.public_id
    api.post(f"/api/records/{record_id}/draft/actions/submit")
    run = run_execute(run_pk=ExecutionRun.objects.get().pk)

    body = api.get(f"/api/runs/{run.run_id}").json()

    assert body["status"] == "finished" and body["verdict"] == "reproduced"
    assert body["report"]["summary"]["code_cells"] == 2
    assert body["environment"]["sandbox"] == "bubblewrap"
    executed = api.get(f"/api/runs/{run.run_id}/executed-notebook")
    assert executed.status_code == 200
    assert b"linear expansion coefficient" in b"".join(executed.streaming_content)


def test_the_run_json_carries_the_image_pull_while_it_runs(api, user):
    from repository.services.runs import _finish, _RunObserver, run_request

    run = run_request(version=demo_draft(user), requested_by=user)
    assert api.get(f"/api/runs/{run.run_id}").json()["pull"] is None  # queued: nothing pulled yet
    ExecutionRun.objects.filter(pk=run.pk).update(status=ExecutionRun.Status.RUNNING)

    _RunObserver(run.pk).pull_progress(3 * 1024 * 1024, 8 * 1024 * 1024)

    body = api.get(f"/api/runs/{run.run_id}").json()
    assert body["status"] == "running"
    assert body["pull"] == {"done_bytes": 3 * 1024 * 1024, "total_bytes": 8 * 1024 * 1024}
    run.refresh_from_db()
    _finish(run, verdict="reproduced", message="All outputs identical", environment={"runner": "image"})
    assert api.get(f"/api/runs/{run.run_id}").json()["pull"] is None
