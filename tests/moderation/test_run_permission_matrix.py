"""Who may see and act on the verification runs of a submitted draft: every actor against every run action.

A community's moderators need the run and its report to decide on a request, so they see the draft and its runs
exactly as global moderators do; a moderator of another community sees nothing. The expected table is written
out in full, so an unexpected allow or deny shows up as one failing cell.
"""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from moderation.models import ReviewRequest
from repository.models import ExecutionRun
from tests.moderation.test_permission_matrix import api_client

pytestmark = pytest.mark.django_db

ACTORS = ["anonymous", "other_user", "author", "other_community_moderator", "community_moderator",
          "global_moderator", "admin_user"]
API_ACTIONS = ["draft", "runs", "run", "executed-notebook", "rerun", "cancel"]
WEB_ACTIONS = ["draft-page", "run-page", "rerun", "cancel"]


def expected_api_status(actor: str, action: str) -> int:
    if actor == "anonymous":
        return 401
    if actor in ("other_user", "other_community_moderator"):
        return 404  # they cannot see the draft or its runs at all
    return {"executed-notebook": 404,  # the run is only queued: no executed notebook yet, for anyone
            "rerun": 409,  # a run is already queued
            "cancel": 202}.get(action, 200)


@pytest.fixture
def actors(author, other_user, other_community_moderator, community_moderator, global_moderator, admin_user):
    return {"anonymous": AnonymousUser(), "other_user": other_user, "author": author,
            "other_community_moderator": other_community_moderator, "community_moderator": community_moderator,
            "global_moderator": global_moderator, "admin_user": admin_user}


@pytest.fixture
def run(review: ReviewRequest) -> ExecutionRun:
    return ExecutionRun.objects.get(version=review.version)


def call_api(client, run: ExecutionRun, action: str):
    draft = f"/api/records/{run.version.record.public_id}/draft"
    return {
        "draft": lambda: client.get(draft),
        "runs": lambda: client.get(f"{draft}/runs"),
        "run": lambda: client.get(f"/api/runs/{run.run_id}"),
        "executed-notebook": lambda: client.get(f"/api/runs/{run.run_id}/executed-notebook"),
        "rerun": lambda: client.post(f"{draft}/runs"),
        "cancel": lambda: client.post(f"/api/runs/{run.run_id}/actions/cancel"),
    }[action]()


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", API_ACTIONS)
def test_api(actors, run, actor, action):
    response = call_api(api_client(actors[actor]), run, action)

    assert response.status_code == expected_api_status(actor, action), response.content
    cancelled = ExecutionRun.objects.get(pk=run.pk).status == ExecutionRun.Status.CANCELLED
    assert cancelled == (action == "cancel" and response.status_code == 202)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", WEB_ACTIONS)
def test_web(actors, run, actor, action):
    client = Client()
    user = actors[actor]
    if user.is_authenticated:
        client.force_login(user)
    record_id = run.version.record.public_id

    response = {
        "draft-page": lambda: client.get(f"/uploads/{record_id}/"),
        "run-page": lambda: client.get(f"/runs/{run.run_id}/"),
        "rerun": lambda: client.post(f"/uploads/{record_id}/runs/"),
        "cancel": lambda: client.post(f"/runs/{run.run_id}/cancel/"),
    }[action]()

    if actor == "anonymous":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    elif actor in ("other_user", "other_community_moderator"):
        assert response.status_code == 404
    elif action in ("draft-page", "run-page"):
        assert response.status_code == 200
        assert run.version.title in response.content.decode()
    else:
        assert response.status_code == 302  # back to the draft page, with a message either way
    cancelled = ExecutionRun.objects.get(pk=run.pk).status == ExecutionRun.Status.CANCELLED
    allowed = actor not in ("anonymous", "other_user", "other_community_moderator")
    assert cancelled == (action == "cancel" and allowed)


# --- what a moderator reads to decide: the draft's data files and a finished run's report (issue 18 §6) -----------


@pytest.fixture
def finished_run(run: ExecutionRun) -> ExecutionRun:
    from django.utils import timezone

    notebook = run.version.files.select_related("blob").get(path=run.version.notebook_path)
    ExecutionRun.objects.filter(pk=run.pk).update(
        status=ExecutionRun.Status.FINISHED, verdict="reproduced", message="All outputs identical",
        finished_at=timezone.now(), executed_notebook=notebook.blob, logs="kernel started\nkernel stopped\n")
    return ExecutionRun.objects.get(pk=run.pk)


READER_ACTIONS = ["data-file-api", "data-file-browser", "report-page", "report-api", "executed-notebook"]


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", READER_ACTIONS)
def test_moderators_read_a_submitted_drafts_data_files_and_run_reports(actors, finished_run, actor, action):
    from repository import demo

    user = actors[actor]
    browser = Client()
    if user.is_authenticated:
        browser.force_login(user)
    data_file = f"/api/records/{finished_run.version.record.public_id}/draft/files/{demo.DATA_PATH}"

    response = {
        "data-file-api": lambda: api_client(user).get(data_file),
        "data-file-browser": lambda: browser.get(data_file),  # the request page's link, with the session
        "report-page": lambda: browser.get(f"/runs/{finished_run.run_id}/"),
        "report-api": lambda: api_client(user).get(f"/api/runs/{finished_run.run_id}"),
        "executed-notebook": lambda: api_client(user).get(f"/api/runs/{finished_run.run_id}/executed-notebook"),
    }[action]()

    if actor == "anonymous":
        assert response.status_code in ((302,) if action == "report-page" else (401, 403))
    elif actor in ("other_user", "other_community_moderator"):
        assert response.status_code == 404
    else:
        assert response.status_code == 200, response.content[:500]
        body = b"".join(response.streaming_content) if response.streaming else response.content
        expected = {"data-file-api": demo.measurements_csv(), "data-file-browser": demo.measurements_csv(),
                    "report-page": b"All outputs identical", "report-api": b'"verdict":"reproduced"',
                    "executed-notebook": b'"cells"'}[action]
        assert expected in body
