"""RUNNER=gitlab end to end: a run is committed to the verification project of the fake GitLab, whose pipeline
really runs the job (in the bubblewrap sandbox, with network); the job downloads its data from nbarchive's live
server through signed URLs; the artifacts come back and end in the same report as the local runner's.

Failure modes are verdicts or retries, never hangs: the pipeline failing to start, no runner, the job timing
out, artifacts missing or too large, and cancelling a run.
"""

import io
import json
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nbformat
import pytest
import requests
from django.db import connection
from nbformat.v4 import new_code_cell, new_notebook

from repository.gitlab.ci import CI_FILE, MANIFEST_PATH
from repository.gitlab.client import GitLabClient
from repository.gitlab.runner import GitLabRunner
from repository.models import ExecutionRun, Version
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload
from repository.services.run_data import run_data_url
from repository.services.runs import InfrastructureError, run_cancel, run_cancel_remote, run_execute, run_request
from tests.factories import IMAGE, demo_draft
from tests.sandbox import SANDBOX_READY

VERIFY_PROJECT = "verify/runs"
on_gitlab = [pytest.mark.django_db(transaction=True), pytest.mark.sandbox]


def marks(*extra):
    def apply(function):
        for mark in reversed([*on_gitlab, *extra]):
            function = mark(function)
        return function
    return apply


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    """Queued tasks are not sent anywhere: the tests call the services themselves."""
    from repository import tasks

    sent = []
    monkeypatch.setattr(tasks.run_verification_task, "apply_async", lambda *a, **k: sent.append(("verify", a, k)))
    monkeypatch.setattr(tasks.run_cancel_remote_task, "delay", lambda *a, **k: sent.append(("cancel", a, k)))
    return sent


def use_fake_gitlab(settings, server, live_server):
    """The fake GitLab `server` as the GitLab runner's (RUNNER=gitlab is the `gitlab_runner` fixture's, which also
    routes the run-data links), nbarchive's URLs at the live server, short waits."""
    assert settings.RUNNER == "gitlab", "request the gitlab_runner fixture"
    server.create_project(VERIFY_PROJECT, files={"README.md": "Verification runs of nbarchive.\n"})
    settings.GITLAB_URL = server.url
    settings.GITLAB_TOKEN = server.token
    settings.GITLAB_PROJECT = VERIFY_PROJECT
    settings.SITE_URL = live_server.url
    settings.GITLAB_POLL_INITIAL_SECONDS = 0.2
    settings.GITLAB_POLL_MAX_SECONDS = 1.0
    settings.GITLAB_API_ATTEMPTS = 3
    settings.GITLAB_PENDING_TIMEOUT_SECONDS = 60
    settings.GITLAB_JOB_TIMEOUT_SECONDS = 110
    return server


@pytest.fixture
def gitlab_env(gitlab_runner, settings, gitlab_kernel_env, live_server):
    """RUNNER=gitlab against the fake GitLab whose jobs run in the kernel environment (IMAGE is a placeholder)."""
    return use_fake_gitlab(settings, gitlab_kernel_env, live_server)


def notebook_draft(user, source: str) -> Version:
    notebook = new_notebook(cells=[new_code_cell(source, execution_count=1)])  # as if run once in Jupyter
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    data = nbformat.writes(notebook).encode()
    version = record_create(owner=user, metadata={
        "title": "Slow", "description": "Sleeps", "license": "CC-BY-4.0", "creators": [{"name": "Doe, Jane"}],
        "container_image": IMAGE})
    draft_file_upload(version=version, actor=user, path="slow.ipynb", stream=io.BytesIO(data),
                      content_length=len(data))
    return Version.objects.get(pk=version.pk)


def only_pipeline(server) -> dict:
    """The one pipeline nbarchive started (the commit's own push pipeline is skipped: "[skip ci]")."""
    pipelines = server.pipelines(VERIFY_PROJECT)
    assert all(p["status"] == "skipped" for p in pipelines if p["source"] != "api"), pipelines
    started = [p for p in pipelines if p["source"] == "api"]
    assert len(started) == 1, [(p["id"], p["status"]) for p in started]
    return started[0]


# --- the whole path ------------------------------------------------------------------------------------------------


@marks()
def test_a_run_goes_through_a_gitlab_pipeline_and_ends_with_the_same_report_as_the_local_runner(user, gitlab_env,
                                                                                                 settings):
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)
    assert run.runner == "gitlab"

    run = run_execute(run_pk=run.pk)

    assert run.status == "finished" and run.verdict == "reproduced", (run.message, run.logs[-2000:])
    pipeline = only_pipeline(gitlab_env)
    job = pipeline["jobs"][0]
    project_id = gitlab_env.project(VERIFY_PROJECT)["id"]
    assert pipeline["status"] == "success" and pipeline["source"] == "api"
    assert run.external_id == f"{project_id}:{pipeline['id']}"
    assert run.external_url == pipeline["web_url"] and run.external_job_url == job["web_url"]
    assert job["image"] == IMAGE and job["timeout_seconds"] == 110
    assert run.executed_notebook is not None
    assert run.report["environment"]["runner"] == "gitlab" and run.report["environment"]["image"] == IMAGE
    assert run.report["environment"]["pipeline_url"] == run.external_url
    assert run.report["environment"]["python_version"].startswith("3.")
    assert run.report["execution"]["outcome"] == "completed"
    assert "fetched data/measurements.csv" in run.logs

    # What was committed: the notebook, the job, the CI file and a manifest with signed links, and no secret.
    files = gitlab_env.files_at(VERIFY_PROJECT, ref=pipeline["ref"])
    assert pipeline["ref"] == f"nbarchive/run-{run.run_id}-1"
    assert {"work/thermal.ipynb", CI_FILE, MANIFEST_PATH, ".nbarchive/job.py", ".nbarchive/job_kernel.py",
            ".nbarchive/kernel_collector.py", ".nbarchive/kernel_client.py", ".nbarchive/sandbox_process.py",
            ".nbarchive/kernel_startup.py", ".nbarchive/kernel_launcher.py"} <= set(files)
    manifest = json.loads(files[MANIFEST_PATH])
    assert manifest["notebook"] == "thermal.ipynb"
    [data_input] = manifest["inputs"]
    assert data_input["target_path"] == "data/measurements.csv"
    assert data_input["url"].startswith(f"{live_server_url(settings)}/runs/{run.run_id}/data/data/measurements.csv?")
    for content in files.values():
        assert gitlab_env.token.encode() not in content and settings.SECRET_KEY.encode() not in content
    assert "GITLAB_TOKEN" not in json.dumps(gitlab_env.job(job["id"])["environment"])
    # The link died with the run.
    assert requests.get(data_input["url"], timeout=10).status_code == 403

    # The same notebook on the local runner: the same comparison code gives the same report.
    if SANDBOX_READY:
        settings.RUNNER = "local"
        local = run_execute(run_pk=run_request(version=version, requested_by=user).pk)
        assert local.verdict == run.verdict
        assert local.report["summary"] == run.report["summary"]
        assert local.report["cells"] == run.report["cells"]
        assert set(local.report) == set(run.report)


def live_server_url(settings) -> str:
    return settings.SITE_URL


@marks()
def test_the_pipeline_failing_to_start_is_retried_with_backoff(user, gitlab_env):
    gitlab_env.fail_next(2, 500, path_contains="/pipeline", method="POST")
    version = demo_draft(user)

    run = run_execute(run_pk=run_request(version=version, requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "reproduced", run.message
    assert only_pipeline(gitlab_env)["status"] == "success"


@marks()
def test_gitlab_refusing_to_start_pipelines_puts_the_run_back_then_the_task_ends_it_in_error(user, gitlab_env):
    from repository.tasks import run_verification_task

    gitlab_env.fail_next(1000, 500, path_contains="/pipeline", method="POST")
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)

    with pytest.raises(InfrastructureError, match="GitLab failed 3 times starting the pipeline"):
        run_execute(run_pk=run.pk)
    run.refresh_from_db()
    assert run.status == "queued" and not run.verdict

    run_verification_task.apply(args=[run.pk])  # eager: the retries run at once, then the run is given up

    run.refresh_from_db()
    assert run.status == "error" and not run.verdict
    assert "GitLab failed 3 times starting the pipeline" in run.message
    assert not [p for p in gitlab_env.pipelines(VERIFY_PROJECT) if p["source"] == "api"]


@marks()
def test_no_runner_picking_up_the_job_cancels_the_pipeline_and_ends_the_run_in_error(user, gitlab_env, settings):
    gitlab_env.runner_unavailable = True
    settings.GITLAB_PENDING_TIMEOUT_SECONDS = 2
    version = demo_draft(user)

    started = time.monotonic()
    run = run_execute(run_pk=run_request(version=version, requested_by=user).pk)

    assert time.monotonic() - started < 30
    assert run.status == "error" and not run.verdict
    assert "No GitLab runner picked up the job within 2 s" in run.message
    assert only_pipeline(gitlab_env)["status"] == "canceled"


@marks()
def test_a_job_over_its_timeout_is_timed_out(user, gitlab_env, settings):
    settings.GITLAB_JOB_TIMEOUT_SECONDS = 8
    version = notebook_draft(user, "import time\ntime.sleep(600)")

    run = run_execute(run_pk=run_request(version=version, requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "timed_out", run.message
    assert "longer than its timeout of 8 s" in run.message
    assert only_pipeline(gitlab_env)["jobs"][0]["failure_reason"] == "job_execution_timeout"


@marks()
def test_missing_artifacts_are_a_verdict_with_a_message(user, gitlab_env):
    gitlab_env.drop_artifacts = True
    version = demo_draft(user)

    run = run_execute(run_pk=run_request(version=version, requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "execution_failed"
    assert "without the artifacts" in run.message and "cannot be judged" in run.message


@marks()
def test_artifacts_over_the_size_limit_are_not_downloaded_and_say_so(user, gitlab_env, settings):
    settings.GITLAB_ARTIFACTS_MAX_MB = 0.001  # about 1 KB: the executed notebook alone is larger
    version = demo_draft(user)

    run = run_execute(run_pk=run_request(version=version, requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "resource_limit"
    assert "larger than the limit" in run.message
    assert not any("/artifacts" in request.path and request.method == "GET" for request in gitlab_env.requests)


@marks()
def test_cancelling_a_running_run_cancels_its_pipeline(user, gitlab_env, no_queue):
    version = notebook_draft(user, "import time\ntime.sleep(600)")
    run = run_request(version=version, requested_by=user)
    outcome = {}

    def work():
        try:
            outcome["run"] = run_execute(run_pk=run.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 60
    located = ExecutionRun.objects.filter(pk=run.pk).exclude(external_job_url="")
    while time.monotonic() < deadline and not located.exists():
        time.sleep(0.2)
    while time.monotonic() < deadline and only_pipeline(gitlab_env)["jobs"][0]["status"] != "running":
        time.sleep(0.2)

    cancelled = run_cancel(run=ExecutionRun.objects.get(pk=run.pk), actor=user)
    worker.join(timeout=60)

    assert not worker.is_alive()
    assert cancelled.status == "cancelled"
    assert outcome["run"].status == "cancelled" and not outcome["run"].verdict
    assert ("cancel", (run.pk,), {}) in no_queue  # the remote cancel is queued too, after commit
    assert gitlab_env.wait_for_pipeline(only_pipeline(gitlab_env)["id"], timeout=30)["status"] == "canceled"
    # The task's path: asking GitLab again is harmless.
    assert run_cancel_remote(run_pk=run.pk) is True


@pytest.mark.django_db
def test_the_runner_cancels_a_pipeline_by_the_runs_external_id(gitlab_server):
    gitlab_server.push_pipelines = False
    project = gitlab_server.create_project(VERIFY_PROJECT, files={
        CI_FILE: json.dumps({"wait": {"script": ["sleep 600"]}})})
    gitlab_server.runner_unavailable = True  # the job stays pending: nothing runs
    client = GitLabClient(gitlab_server.url, gitlab_server.token)
    pipeline = client.pipeline_create(project["id"], ref="main")
    runner = GitLabRunner(client=client, project=VERIFY_PROJECT)

    runner.cancel(f"{project['id']}:{pipeline.id}")
    runner.cancel(f"{project['id']}:{pipeline.id}")  # idempotent

    assert gitlab_server.pipeline(pipeline.id)["status"] == "canceled"


@pytest.mark.django_db
def test_only_owners_and_moderators_cancel_and_only_active_runs(user, other_user):
    from repository.errors import Conflict, PermissionDenied

    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)

    with pytest.raises(PermissionDenied):
        run_cancel(run=run, actor=other_user)
    run = run_cancel(run=run, actor=user)
    assert run.status == "cancelled" and run.finished_at is not None
    with pytest.raises(Conflict):
        run_cancel(run=run, actor=user)
    assert run_execute(run_pk=run.pk) is None  # the queued task finds nothing to do


@pytest.mark.django_db
def test_the_cancel_api_answers_202_with_the_run(user, api):
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)

    response = api.post(f"/api/runs/{run.run_id}/actions/cancel")

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "cancelled"
    assert api.post(f"/api/runs/{run.run_id}/actions/cancel").status_code == 409


# --- the signed input URLs -----------------------------------------------------------------------------------------


@pytest.fixture
def running_run(user, gitlab_runner):
    """A GitLab run in progress, on a server whose runner is GitLab (the only one that routes these URLs)."""
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)
    ExecutionRun.objects.filter(pk=run.pk).update(status="running", runner="gitlab")
    return ExecutionRun.objects.get(pk=run.pk)


def _path_and_query(url: str) -> tuple[str, dict]:
    parts = urlsplit(url)
    return parts.path, {key: values[0] for key, values in parse_qs(parts.query).items()}


@pytest.mark.django_db
def test_a_signed_input_url_serves_the_staged_bytes_without_login(client, running_run):
    from repository import demo

    path, query = _path_and_query(run_data_url(run=running_run, target_path="data/measurements.csv"))

    response = client.get(path, query)

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == demo.measurements_csv()
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_a_link_forged_with_the_former_constant_development_key_gets_nothing(client, running_run):
    # Until the key was generated per checkout, servers left at the default signed with this public constant.
    from django.core import signing

    from repository.services.run_data import SALT

    former_key = "insecure-development-key-change-me"
    expires = int(time.time()) + 600
    target = "data/measurements.csv"
    signature = signing.Signer(key=former_key, salt=SALT).signature(f"{running_run.run_id}\n{target}\n{expires}")

    response = client.get(f"/runs/{running_run.run_id}/data/{target}", {"expires": expires, "signature": signature})

    assert response.status_code == 403
    assert not getattr(response, "streaming", False)


@pytest.mark.django_db
def test_run_inputs_are_not_even_routed_unless_the_runner_is_gitlab(client, running_run, settings):
    from django.urls import NoReverseMatch, Resolver404, resolve, reverse

    from tests.conftest import urlconf_rebuild

    path, query = _path_and_query(run_data_url(run=running_run, target_path="data/measurements.csv"))
    assert resolve(path).url_name == "run_data"
    settings.RUNNER = "image"
    urlconf_rebuild()  # the server restarted with another runner

    assert client.get(path, query).status_code == 404
    with pytest.raises(Resolver404):
        resolve(path)
    with pytest.raises(NoReverseMatch):
        reverse("repository:run_data", kwargs={"run_id": running_run.run_id, "target_path": "data/x.csv"})


@pytest.mark.django_db
def test_a_server_started_with_another_runner_has_no_run_data_route(client, settings):
    from django.urls import Resolver404, resolve

    assert settings.RUNNER == "local"  # the suite's runner, with the URLconf built at start
    path = "/runs/00000000-0000-0000-0000-000000000000/data/data/measurements.csv"
    with pytest.raises(Resolver404):
        resolve(path)
    assert client.get(path, {"expires": "1", "signature": "x"}).status_code == 404


@pytest.mark.django_db
def test_a_signed_link_to_a_run_of_another_runner_is_refused(client, running_run):
    ExecutionRun.objects.filter(pk=running_run.pk).update(runner="local")
    path, query = _path_and_query(run_data_url(run=running_run, target_path="data/measurements.csv"))

    assert client.get(path, query).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["signature", "expires", "path", "run", "expired"])
def test_an_altered_or_expired_input_url_is_refused(client, running_run, change):
    url = run_data_url(run=running_run, target_path="data/measurements.csv",
                       expires_at=int(time.time()) - 5 if change == "expired" else None)
    path, query = _path_and_query(url)
    if change == "signature":
        query["signature"] = query["signature"][:-2] + ("AA" if not query["signature"].endswith("AA") else "BB")
    elif change == "expires":
        query["expires"] = str(int(query["expires"]) + 3600)
    elif change == "path":
        path = path.replace("measurements.csv", "other.csv")
    elif change == "run":
        path = path.replace(str(running_run.run_id), "00000000-0000-0000-0000-000000000000")

    response = client.get(path, query)

    assert response.status_code == 403


@pytest.mark.django_db
def test_an_input_url_dies_when_its_run_ends_and_serves_nothing_but_inputs(client, running_run):
    path, query = _path_and_query(run_data_url(run=running_run, target_path="thermal.ipynb"))
    assert client.get(path, query).status_code == 404  # the notebook is committed, not served

    path, query = _path_and_query(run_data_url(run=running_run, target_path="data/measurements.csv"))
    ExecutionRun.objects.filter(pk=running_run.pk).update(status="finished", verdict="reproduced")

    assert client.get(path, query).status_code == 403


@pytest.mark.django_db
def test_the_draft_page_cancels_a_queued_run(client, user, other_user):
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)
    client.force_login(other_user)
    assert client.post(f"/runs/{run.run_id}/cancel/").status_code == 404
    client.force_login(user)

    page = client.get(f"/uploads/{version.record.public_id}/")
    response = client.post(f"/runs/{run.run_id}/cancel/")

    assert f"/runs/{run.run_id}/cancel/" in page.content.decode()
    assert response.status_code == 302 and response["Location"] == f"/uploads/{version.record.public_id}/"
    run.refresh_from_db()
    assert run.status == "cancelled"


# --- the job script, as the CI job runs it -------------------------------------------------------------------------


def _run_job_script(tmp_path, inputs: list[dict]) -> dict:
    import shutil
    import subprocess
    import sys

    from repository.gitlab.ci import JOB_FILES, kernel_environment

    checkout = tmp_path / "checkout"
    (checkout / ".nbarchive").mkdir(parents=True)
    (checkout / "work").mkdir()
    (checkout / "work" / "n.ipynb").write_text("{}")
    for path, source in JOB_FILES.items():
        shutil.copy(source, checkout / path)
    kernel_env, kernel_folders = kernel_environment()
    (checkout / ".nbarchive" / "manifest.json").write_text(json.dumps({
        "format": 2, "notebook": "n.ipynb", "cell_timeout_seconds": 10, "max_output_bytes": 1000, "inputs": inputs,
        "kernel_env": kernel_env, "kernel_folders": kernel_folders}))
    # A Python with what the job asks of an image (ipykernel and nbclient): the kernel environment's, if built.
    from django.conf import settings

    python = settings.RUNNER_KERNEL_PYTHON if Path(settings.RUNNER_KERNEL_PYTHON).exists() else sys.executable
    completed = subprocess.run([python, ".nbarchive/job.py"], cwd=checkout, capture_output=True, text=True,
                               timeout=60, check=False)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    return json.loads((checkout / "out" / "status.json").read_text())


@pytest.fixture
def data_server(tmp_path):
    import http.server

    served = tmp_path / "served"
    served.mkdir()
    (served / "data.csv").write_bytes(b"a,b\n1,2\n")

    def handler(*args, **kwargs):
        return http.server.SimpleHTTPRequestHandler(*args, directory=str(served), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_job_refuses_an_input_path_outside_its_working_folder(tmp_path, data_server):
    status = _run_job_script(tmp_path, [{"target_path": "../../escape.csv", "url": f"{data_server}/data.csv",
                                         "sha256": "0" * 64, "size": 8}])

    assert status["outcome"] == "driver_error" and "not a plain relative path" in status["message"]
    assert not (tmp_path / "escape.csv").exists()


def test_the_job_checks_every_inputs_checksum_before_the_notebook_runs(tmp_path, data_server):
    status = _run_job_script(tmp_path, [{"target_path": "data/data.csv", "url": f"{data_server}/data.csv",
                                         "sha256": "0" * 64, "size": 8}])

    assert status["outcome"] == "driver_error" and "expected 8 bytes with sha256 " + "0" * 64 in status["message"]
    assert not (tmp_path / "checkout" / "work" / "data" / "data.csv").exists()


@pytest.mark.parametrize("visibility", ["public", "internal"])
def test_nothing_is_committed_to_a_verification_project_others_can_read(user, gitlab_runner, gitlab_server, live_server,
                                                                        visibility):
    use_fake_gitlab(gitlab_runner, gitlab_server, live_server)
    gitlab_server.set_project(VERIFY_PROJECT, visibility=visibility)
    version = demo_draft(user)
    run = run_request(version=version, requested_by=user)

    with pytest.raises(InfrastructureError, match=f"is {visibility}: runs commit unpublished"):
        run_execute(run_pk=run.pk)

    assert list(gitlab_server.files_at(VERIFY_PROJECT)) == ["README.md"]
    with pytest.raises(KeyError):  # no branch of the run's: nothing was committed
        gitlab_server.files_at(VERIFY_PROJECT, ref=f"nbarchive/run-{run.run_id}-1")
    assert not gitlab_server.pipelines(VERIFY_PROJECT)
