"""The fake GitLab (tests/fakes/gitlab.py) driven through the real python-gitlab client: what the GitLab runner,
mirror and import of nbarchive rely on behaves as GitLab's API does, and its pipelines really run their scripts
in the local sandbox: in the job's image pulled from the tests' registry (`gitlab_images`), or, where a test asks
for it because its image is a placeholder (`gitlab_kernel_env`), in the kernel environment.
"""

import base64
import hashlib
import io
import json
import os
import random
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import gitlab
import pytest

from tests.fakes import gitlab_ci, gitlab_job_sandbox
from tests.fakes.gitlab import FakeGitLab

FINISHED = {"success", "failed", "canceled", "skipped", "manual"}
IMAGE = "registry.example.org/nbarchive/kernel@sha256:" + "ab" * 32


def _project(server: FakeGitLab, client: gitlab.Gitlab, path: str = "nbarchive/verify"):
    server.create_project(path)
    return client.projects.get(path)


def _commit(project, files: dict[str, str | bytes], *, branch: str = "main", message: str = "Add files"):
    actions = []
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        actions.append({"action": "create", "file_path": path, "content": base64.b64encode(data).decode(),
                        "encoding": "base64"})
    return project.commits.create({"branch": branch, "commit_message": message, "actions": actions})


def _wait(project, pipeline_id: int, *, timeout: float = 60.0, until=FINISHED):
    deadline = time.monotonic() + timeout
    while True:
        pipeline = project.pipelines.get(pipeline_id)
        if pipeline.status in until:
            return pipeline
        if time.monotonic() > deadline:
            raise AssertionError(f"pipeline {pipeline_id} still {pipeline.status} after {timeout} s")
        time.sleep(0.1)


def _wait_job(project, job_id: int, statuses: set[str], timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        job = project.jobs.get(job_id)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout} s")
        time.sleep(0.05)


def _zip(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}


def _processes_with(argument: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                arguments = handle.read().split(b"\0")
        except OSError:
            continue
        if argument.encode() in arguments:
            found.append(int(entry.name))
    return found


# --- projects, repository, tags ------------------------------------------------------------------------------------


def test_projects_are_created_and_found_by_path(gitlab_server, gitlab_client):
    gitlab_server.create_group("nbarchive")
    namespace = gitlab_client.namespaces.get("nbarchive")
    created = gitlab_client.projects.create({"name": "Verify runs", "path": "verify", "namespace_id": namespace.id})
    assert created.path_with_namespace == "nbarchive/verify"
    assert created.web_url == f"{gitlab_server.url}/nbarchive/verify"

    by_path = gitlab_client.projects.get("nbarchive/verify")  # sent as nbarchive%2Fverify
    by_id = gitlab_client.projects.get(created.id)
    assert by_path.id == by_id.id == created.id

    with pytest.raises(gitlab.GitlabCreateError) as taken:
        gitlab_client.projects.create({"name": "verify", "path": "verify", "namespace_id": namespace.id})
    assert taken.value.response_code == 400
    with pytest.raises(gitlab.GitlabGetError) as missing:
        gitlab_client.projects.get("nbarchive/nope")
    assert missing.value.response_code == 404
    assert "404 Project Not Found" in missing.value.error_message


def test_commits_files_and_tree(gitlab_server, gitlab_client):
    project = _project(gitlab_server, gitlab_client)
    notebook = json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5}).encode()
    first = project.commits.create({
        "branch": "main", "commit_message": "Version 1",
        "actions": [
            {"action": "create", "file_path": "analysis.ipynb", "content": base64.b64encode(notebook).decode(),
             "encoding": "base64"},
            {"action": "create", "file_path": "data/manifest.json", "content": '{"files": []}'},
            {"action": "create", "file_path": "data/raw/a.csv", "content": "x,y\n1,2\n"},
            {"action": "create", "file_path": "run.sh", "content": "#!/bin/sh\n"},
        ],
    })
    assert len(first.id) == 40 and first.title == "Version 1" and first.parent_ids == []
    assert project.commits.get(first.id).id == first.id
    assert project.commits.get("main").id == first.id  # a ref is resolved too

    assert project.files.raw(file_path="analysis.ipynb", ref="main") == notebook
    assert project.files.raw(file_path="data/raw/a.csv", ref=first.id) == b"x,y\n1,2\n"
    assert project.files.raw(file_path="data/raw/a.csv", ref=first.short_id) == b"x,y\n1,2\n"

    top = project.repository_tree(ref="main", get_all=True)
    assert [(entry["type"], entry["path"]) for entry in top] == [
        ("tree", "data"), ("blob", "analysis.ipynb"), ("blob", "run.sh")]
    git_blob_id = hashlib.sha1(b"blob 10\x00#!/bin/sh\n").hexdigest()  # what the mirror compares its files with
    assert {entry["path"]: entry["id"] for entry in top}["run.sh"] == git_blob_id
    recursive = project.repository_tree(ref="main", recursive=True, get_all=True, per_page=2)
    assert sorted(entry["path"] for entry in recursive if entry["type"] == "blob") == [
        "analysis.ipynb", "data/manifest.json", "data/raw/a.csv", "run.sh"]
    first_page = project.repository_tree(ref="main", recursive=True, per_page=2, page=1)
    assert len(first_page) == 2

    second = project.commits.create({
        "branch": "v2", "start_branch": "main", "commit_message": "Version 2",
        "actions": [
            {"action": "update", "file_path": "data/raw/a.csv", "content": "x,y\n3,4\n"},
            {"action": "delete", "file_path": "run.sh"},
        ],
    })
    assert second.parent_ids == [first.id]
    assert project.commits.get("v2").id == second.id
    assert gitlab_server.files_at("nbarchive/verify", "v2") == {
        "analysis.ipynb": notebook, "data/manifest.json": b'{"files": []}', "data/raw/a.csv": b"x,y\n3,4\n"}
    assert gitlab_server.files_at("nbarchive/verify", "main")["data/raw/a.csv"] == b"x,y\n1,2\n"

    with pytest.raises(gitlab.GitlabCreateError) as exists:
        _commit(project, {"analysis.ipynb": "{}"})
    assert exists.value.response_code == 400
    assert "already exists" in exists.value.error_message
    with pytest.raises(gitlab.GitlabCreateError) as outside:
        _commit(project, {"../escape.txt": "x"})
    assert outside.value.response_code == 400
    with pytest.raises(gitlab.GitlabCreateError) as no_branch:
        _commit(project, {"new.txt": "x"}, branch="elsewhere")
    assert "only create or edit files when you are on a branch" in no_branch.value.error_message
    with pytest.raises(gitlab.GitlabGetError) as missing_file:
        project.files.raw(file_path="nope.txt", ref="main")
    assert missing_file.value.response_code == 404 and "404 File Not Found" in missing_file.value.error_message
    with pytest.raises(gitlab.GitlabGetError):
        project.files.raw(file_path="analysis.ipynb", ref="no-such-ref")
    with pytest.raises(gitlab.GitlabGetError) as missing_commit:
        project.commits.get("no-such-ref")
    assert missing_commit.value.response_code == 404


def test_tags_lightweight_and_annotated(gitlab_server, gitlab_client):
    project = _project(gitlab_server, gitlab_client)
    first = _commit(project, {"nb.ipynb": "{}"})
    light = project.tags.create({"tag_name": "v1", "ref": "main"})
    assert light.name == "v1" and light.commit["id"] == first.id and light.message is None
    annotated = project.tags.create({"tag_name": "v2", "ref": first.id,
                                     "message": "Version 2\n\nDOI: 10.80000/nb.2\nCite as: ..."})
    assert annotated.commit["id"] == first.id and annotated.target != first.id
    assert annotated.message.startswith("Version 2")

    assert project.tags.get("v1").target == first.id
    assert project.tags.get("v2").message.endswith("Cite as: ...")
    assert gitlab_server.tags("nbarchive/verify")["v2"]["annotated"] is True

    with pytest.raises(gitlab.GitlabCreateError) as duplicate:
        project.tags.create({"tag_name": "v1", "ref": "main"})
    assert duplicate.value.response_code == 400 and "already exists" in duplicate.value.error_message
    with pytest.raises(gitlab.GitlabCreateError) as bad_ref:
        project.tags.create({"tag_name": "v3", "ref": "nope"})
    assert "is invalid" in bad_ref.value.error_message
    with pytest.raises(gitlab.GitlabCreateError):
        project.tags.create({"tag_name": "bad name", "ref": "main"})

    gitlab_server.delete_tag("nbarchive/verify", "v1")
    with pytest.raises(gitlab.GitlabGetError) as gone:
        project.tags.get("v1")
    assert gone.value.response_code == 404
    assert list(gitlab_server.tags("nbarchive/verify")) == ["v2"]


# --- authentication ------------------------------------------------------------------------------------------------


def test_a_missing_or_wrong_token_is_401(gitlab_server, gitlab_client):
    _project(gitlab_server, gitlab_client, "nbarchive/verify")

    for client in (gitlab.Gitlab(gitlab_server.url, private_token="glpat-wrong"), gitlab.Gitlab(gitlab_server.url)):
        with pytest.raises(gitlab.GitlabAuthenticationError) as denied:
            client.projects.get("nbarchive/verify")
        assert denied.value.response_code == 401
        assert denied.value.error_message == "401 Unauthorized"

def test_switchable_failures_and_request_log(gitlab_server, gitlab_client):
    project = _project(gitlab_server, gitlab_client)
    _commit(project, {"a.txt": "a"})
    gitlab_server.fail_next(1, status=503, path_contains="/repository/files/")
    with pytest.raises(gitlab.GitlabGetError) as failed:
        project.files.raw(file_path="a.txt", ref="main")
    assert failed.value.response_code == 503
    assert project.files.raw(file_path="a.txt", ref="main") == b"a"

    gitlab_server.fail_next(2, status=500, path_contains="/repository/files/")
    retrying = gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token, retry_transient_errors=True)
    assert retrying.projects.get(project.id, lazy=True).files.raw(file_path="a.txt", ref="main") == b"a"

    file_requests = [r for r in gitlab_server.requests if "/repository/files/a.txt" in r.path]
    assert [r.status for r in file_requests] == [503, 200, 500, 500, 200]
    assert file_requests[0].headers["private-token"] == gitlab_server.token


# --- hooks ---------------------------------------------------------------------------------------------------------


class _Catcher(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_tag_push_event_and_hook_delivery(gitlab_server, gitlab_client):
    project = _project(gitlab_server, gitlab_client, "authors/study")
    commit = _commit(project, {"nb.ipynb": "{}"})

    catcher = ThreadingHTTPServer(("127.0.0.1", 0), _Catcher)
    catcher.RequestHandlerClass.received = []
    thread = threading.Thread(target=catcher.serve_forever, daemon=True)
    thread.start()
    try:
        project.hooks.create({"url": f"http://127.0.0.1:{catcher.server_address[1]}/hook", "token": "hook-secret",
                              "tag_push_events": True, "push_events": False})
        project.tags.create({"tag_name": "v1.0", "ref": "main", "message": "First release"})
        deadline = time.monotonic() + 10
        while not _Catcher.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        catcher.shutdown()
        catcher.server_close()

    headers, delivered = _Catcher.received[0]
    assert headers["x-gitlab-event"] == "Tag Push Hook"
    assert headers["x-gitlab-token"] == "hook-secret"
    event = gitlab_server.tag_push_event("authors/study", "v1.0")
    assert delivered == event
    assert event["object_kind"] == "tag_push"
    assert event["ref"] == "refs/tags/v1.0"
    assert event["checkout_sha"] == commit.id
    assert event["project"]["id"] == project.id
    assert event["project"]["path_with_namespace"] == "authors/study"
    assert event["project"]["web_url"] == f"{gitlab_server.url}/authors/study"
    assert gitlab_server.hook_deliveries[0]["status"] == 200


# --- pipelines without execution -----------------------------------------------------------------------------------


def test_pipeline_creation_errors(gitlab_server, gitlab_client):
    project = _project(gitlab_server, gitlab_client)
    _commit(project, {"README.md": "no CI here"})
    with pytest.raises(gitlab.GitlabCreateError) as missing:
        project.pipelines.create({"ref": "main"})
    assert missing.value.response_code == 400 and "Missing CI config file" in str(missing.value.error_message)
    with pytest.raises(gitlab.GitlabCreateError) as no_ref:
        project.pipelines.create({"ref": "nope"})
    assert "Reference not found" in str(no_ref.value.error_message)

    gitlab_server.push_pipelines = False
    _commit(project, {".gitlab-ci.yml": "verify:\n  script: [echo hi]\n  imagee: python:3.11\n"}, branch="main")
    with pytest.raises(gitlab.GitlabCreateError) as unknown:
        project.pipelines.create({"ref": "main"})
    assert "unknown keys: imagee" in str(unknown.value.error_message)

    gitlab_server.commit("nbarchive/verify", {".gitlab-ci.yml": "verify:\n  script: [echo hi]\n  rules: []\n"})
    with pytest.raises(gitlab.GitlabCreateError) as not_implemented:
        project.pipelines.create({"ref": "main"})
    assert "the fake GitLab does not implement rules" in str(not_implemented.value.error_message)


def test_runner_unavailable_keeps_pipelines_pending_and_cancel_works(gitlab_server, gitlab_client):
    gitlab_server.runner_unavailable = True
    project = _project(gitlab_server, gitlab_client)
    _commit(project, {".gitlab-ci.yml": f"verify:\n  image: {IMAGE}\n  script: [echo hi]\n"},
            message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})
    assert pipeline.status == "pending"
    assert pipeline.web_url == f"{gitlab_server.url}/nbarchive/verify/-/pipelines/{pipeline.id}"
    time.sleep(1.0)
    assert project.pipelines.get(pipeline.id).status == "pending"
    jobs = pipeline.jobs.list(get_all=True)
    assert [(job.name, job.status) for job in jobs] == [("verify", "pending")]
    assert jobs[0].web_url == f"{gitlab_server.url}/nbarchive/verify/-/jobs/{jobs[0].id}"

    pipeline.cancel()
    assert project.pipelines.get(pipeline.id).status == "canceled"
    assert project.jobs.get(jobs[0].id).status == "canceled"


def test_pushes_start_pipelines_like_gitlab(gitlab_server, gitlab_client):
    gitlab_server.runner_unavailable = True
    project = _project(gitlab_server, gitlab_client)
    _commit(project, {".gitlab-ci.yml": "verify:\n  script: [echo hi]\n"}, message="Add CI")
    assert [(p["source"], p["ref"]) for p in gitlab_server.pipelines("nbarchive/verify")] == [("push", "main")]

    gitlab_server.commit("nbarchive/verify", {"x.txt": "x"}, message="Change [skip ci]")
    assert [p["status"] for p in gitlab_server.pipelines("nbarchive/verify")] == ["pending", "skipped"]

    project.tags.create({"tag_name": "v1", "ref": "main"})  # the tagged commit says [skip ci]
    assert [p["status"] for p in gitlab_server.pipelines("nbarchive/verify")] == ["pending", "skipped", "skipped"]
    gitlab_server.push_pipelines = False
    gitlab_server.commit("nbarchive/verify", {"y.txt": "y"}, message="Change")
    assert len(gitlab_server.pipelines("nbarchive/verify")) == 3
    api = project.pipelines.create({"ref": "v1"})
    assert api.source == "api" and api.tag is True


# --- pipelines that really run -------------------------------------------------------------------------------------

sandbox = pytest.mark.sandbox


@sandbox
def test_pipeline_runs_in_the_kernel_environment_and_returns_artifacts(gitlab_kernel_env, gitlab_client):
    project = _project(gitlab_kernel_env, gitlab_client)
    ci = (
        "stages: [verify]\n"
        "verify:\n"
        "  stage: verify\n"
        f"  image: \"{IMAGE}\"\n"
        "  timeout: 10 minutes\n"
        "  script:\n"
        "    - mkdir -p out\n"
        "    - python3 -c \"import nbclient; print('ok')\" > out/ok.txt\n"
        "    - echo \"job $CI_JOB_ID of pipeline $CI_PIPELINE_ID\"\n"
        "  artifacts:\n"
        "    when: always\n"
        "    paths: [out/]\n"
    )
    commit = _commit(project, {".gitlab-ci.yml": ci}, message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})
    assert pipeline.status in ("created", "pending", "running")
    assert pipeline.sha == commit.id
    finished = _wait(project, pipeline.id)
    assert finished.status == "success", gitlab_kernel_env.pipeline(pipeline.id)["jobs"][0]["trace"]

    [listed] = finished.jobs.list(get_all=True)
    job = project.jobs.get(listed.id)
    assert job.status == "success" and job.stage == "verify"
    assert job.artifacts_file["filename"] == "artifacts.zip"
    assert _zip(job.artifacts()) == {"out/ok.txt": b"ok\n"}
    trace = job.trace().decode()
    assert IMAGE in trace
    assert "$ mkdir -p out" in trace
    assert f"job {job.id} of pipeline {pipeline.id}" in trace
    assert "Job succeeded" in trace
    assert gitlab_kernel_env.job(job.id)["image"] == IMAGE


@sandbox
def test_failing_script_fails_the_job_with_its_trace(gitlab_kernel_env, gitlab_client):
    project = _project(gitlab_kernel_env, gitlab_client)
    ci = (
        "verify:\n"
        "  script:\n"
        "    - echo before-the-failure\n"
        "    - python3 -c 'import sys; sys.exit(3)'\n"
        "    - echo never-printed > out.txt\n"
        "  artifacts:\n"
        "    paths: [out.txt]\n"
        "always:\n"
        "  script: [\"mkdir -p logs && echo partial > logs/log.txt && false\"]\n"
        "  artifacts:\n"
        "    when: always\n"
        "    paths: [logs]\n"
    )
    _commit(project, {".gitlab-ci.yml": ci}, message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})
    assert _wait(project, pipeline.id).status == "failed"
    jobs = {job.name: project.jobs.get(job.id) for job in pipeline.jobs.list(get_all=True)}
    failed = jobs["verify"]
    assert failed.status == "failed" and failed.failure_reason == "script_failure"
    trace = failed.trace().decode()
    assert "before-the-failure" in trace
    assert "ERROR: Job failed: exit code 3" in trace
    assert "never-printed" not in trace.replace("$ echo never-printed", "")
    with pytest.raises(gitlab.GitlabGetError) as no_artifacts:
        failed.artifacts()
    assert no_artifacts.value.response_code == 404
    assert _zip(jobs["always"].artifacts()) == {"logs/log.txt": b"partial\n"}


@sandbox
def test_job_timeout_fails_with_job_execution_timeout(gitlab_kernel_env, gitlab_client):
    project = _project(gitlab_kernel_env, gitlab_client)
    marker = f"{30 + random.random():.6f}"
    ci = (
        "short:\n  timeout: 2s\n  script: [\"sleep " + marker + "\"]\n"
        "capped:\n  timeout: 1h\n  script: [\"sleep " + marker + "\"]\n"
    )
    gitlab_kernel_env.max_job_seconds = 3  # the runner's maximum timeout caps the hour
    _commit(project, {".gitlab-ci.yml": ci}, message="CI [skip ci]")
    started = time.monotonic()
    pipeline = project.pipelines.create({"ref": "main"})
    assert _wait(project, pipeline.id, timeout=30).status == "failed"
    assert time.monotonic() - started < 20
    for job in pipeline.jobs.list(get_all=True):
        assert job.status == "failed" and job.failure_reason == "job_execution_timeout", job.name
        assert "execution took longer than" in project.jobs.get(job.id).trace().decode()
    deadline = time.monotonic() + 5
    while _processes_with(marker):
        assert time.monotonic() < deadline, "a timed-out job's process survived"
        time.sleep(0.05)


@pytest.mark.parametrize(("text", "seconds"), [
    ("10 minutes", 600), ("1h 30m", 5400), ("1 hour 30 minutes", 5400), ("2h30m", 9000), ("3600", 3600),
    (45, 45), ("30s", 30), ("1 day", 86400), ("soon", None), ("", None),
])
def test_job_timeout_durations(text, seconds):
    assert gitlab_ci.parse_duration(text) == seconds


@sandbox
def test_cancelling_a_running_pipeline_kills_the_job(gitlab_kernel_env, gitlab_client):
    project = _project(gitlab_kernel_env, gitlab_client)
    marker = f"{60 + random.random():.6f}"
    _commit(project, {".gitlab-ci.yml": f"verify:\n  script:\n    - echo started\n    - sleep {marker}\n"},
            message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})
    [job] = pipeline.jobs.list(get_all=True)
    _wait_job(project, job.id, {"running"})
    deadline = time.monotonic() + 20
    while not _processes_with(marker):
        assert time.monotonic() < deadline, "the job's sleep never started"
        time.sleep(0.05)
    assert project.jobs.get(job.id).trace().decode().count("started") >= 1  # the live trace

    cancelled_at = time.monotonic()
    pipeline.cancel()
    assert _wait(project, pipeline.id, timeout=5).status == "canceled"
    assert project.jobs.get(job.id).status == "canceled"
    while _processes_with(marker):
        assert time.monotonic() - cancelled_at < 5, "the job's process survived the cancel"
        time.sleep(0.05)


@sandbox
def test_the_job_sees_only_ci_variables_and_no_secrets(gitlab_kernel_env, gitlab_client, monkeypatch):
    monkeypatch.setenv("NBARCHIVE_FAKE_GITLAB_SENTINEL", "s3cret-sentinel-value")
    project = _project(gitlab_kernel_env, gitlab_client)
    ci = (
        "variables:\n  GLOBAL_VAR: from-ci-file\n"
        "verify:\n"
        "  variables:\n    PYTHONHASHSEED: '0'\n"
        "  script:\n"
        "    - mkdir -p out\n"
        "    - env > out/env.txt\n"
        "    - tr '\\0' '\\n' < /proc/1/environ > out/pid1.txt\n"
        "    - ls / > out/root.txt\n"
        "    - command -v python3 > out/python.txt\n"
        "  artifacts:\n    paths: [out]\n"
    )
    _commit(project, {".gitlab-ci.yml": ci}, message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})
    assert _wait(project, pipeline.id).status == "success"
    [job] = pipeline.jobs.list(get_all=True)
    files = _zip(project.jobs.get(job.id, lazy=True).artifacts())
    environment = dict(line.split("=", 1) for line in files["out/env.txt"].decode().splitlines() if "=" in line)
    for text in (files["out/env.txt"], files["out/pid1.txt"]):
        assert b"s3cret-sentinel-value" not in text
        assert gitlab_kernel_env.token.encode() not in text
    assert "NBARCHIVE_FAKE_GITLAB_SENTINEL" not in environment
    assert environment["CI_JOB_ID"] == str(job.id)
    assert environment["CI_PIPELINE_ID"] == str(pipeline.id)
    assert environment["CI_COMMIT_SHA"] == pipeline.sha
    assert environment["CI_PROJECT_DIR"] == "/builds/nbarchive/verify"
    assert environment["GLOBAL_VAR"] == "from-ci-file"
    assert environment["PYTHONHASHSEED"] == "0"
    assert files["out/python.txt"].decode().strip().endswith("kernel-env/bin/python3")
    assert "work" not in files["out/root.txt"].decode().split() or b"repository" not in files["out/root.txt"]
    allowed_host = {"PATH", "HOME", "LANG", "HOSTNAME", "PWD", "SHLVL", "_", "OLDPWD"}
    assert all(key.startswith(("CI", "GITLAB_")) or key in allowed_host or key in (
        "GLOBAL_VAR", "PYTHONHASHSEED") for key in environment), sorted(environment)


@sandbox
def test_jobs_reach_a_loopback_server(gitlab_kernel_env, gitlab_client):
    class Data(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"1,2,3\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    data = ThreadingHTTPServer(("127.0.0.1", 0), Data)
    threading.Thread(target=data.serve_forever, daemon=True).start()
    try:
        project = _project(gitlab_kernel_env, gitlab_client)
        url = f"http://127.0.0.1:{data.server_address[1]}/data.csv"
        ci = (
            f"variables:\n  DATA_URL: \"{url}\"\n"
            "fetch:\n  script:\n"
            "    - python3 -c \"import os, urllib.request; open('data.csv', 'wb').write("
            "urllib.request.urlopen(os.environ['DATA_URL']).read())\"\n"
            "    - mkdir -p out && wc -c < data.csv > out/size.txt\n"
            "  artifacts:\n    paths: [out/size.txt]\n"
        )
        _commit(project, {".gitlab-ci.yml": ci}, message="CI [skip ci]")
        pipeline = project.pipelines.create({"ref": "main"})
        finished = _wait(project, pipeline.id)
        assert finished.status == "success", [j["trace"] for j in gitlab_kernel_env.pipeline(pipeline.id)["jobs"]]
    finally:
        data.shutdown()
        data.server_close()
    [job] = pipeline.jobs.list(get_all=True)
    assert _zip(project.jobs.get(job.id, lazy=True).artifacts()) == {"out/size.txt": b"6\n"}


@sandbox
def test_a_failed_stage_skips_the_next(gitlab_kernel_env, gitlab_client):
    project = _project(gitlab_kernel_env, gitlab_client)
    ci = "stages: [one, two]\nfirst:\n  stage: one\n  script: [exit 1]\nsecond:\n  stage: two\n  script: [echo no]\n"
    _commit(project, {".gitlab-ci.yml": ci}, message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})
    assert _wait(project, pipeline.id).status == "failed"
    assert {job.name: job.status for job in pipeline.jobs.list(get_all=True)} == {"first": "failed",
                                                                                "second": "skipped"}


@sandbox
def test_drop_artifacts(gitlab_kernel_env, gitlab_client):
    project = _project(gitlab_kernel_env, gitlab_client)
    ci = f"verify:\n  image: {IMAGE}\n  script: [mkdir -p out, echo hi > out/a.txt]\n  artifacts:\n    paths: [out]\n"
    _commit(project, {".gitlab-ci.yml": ci}, message="CI [skip ci]")

    gitlab_kernel_env.drop_artifacts = True
    pipeline = project.pipelines.create({"ref": "main"})
    assert _wait(project, pipeline.id).status == "success"
    [job] = pipeline.jobs.list(get_all=True)
    with pytest.raises(gitlab.GitlabGetError) as none:
        project.jobs.get(job.id).artifacts()
    assert none.value.response_code == 404


def test_without_bwrap_jobs_fail_with_a_clear_trace(gitlab_server, gitlab_client, monkeypatch):
    real_which = gitlab_job_sandbox.shutil.which
    monkeypatch.setattr(gitlab_job_sandbox.shutil, "which",
                        lambda name, *args, **kwargs: None if name == "bwrap" else real_which(name, *args, **kwargs))
    project = _project(gitlab_server, gitlab_client)
    _commit(project, {".gitlab-ci.yml": "verify:\n  script: [echo hi]\n"}, message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})
    assert _wait(project, pipeline.id, timeout=10).status == "failed"
    [job] = pipeline.jobs.list(get_all=True)
    assert job.failure_reason == "runner_system_failure"
    assert "bubblewrap (bwrap) is not installed" in project.jobs.get(job.id).trace().decode()


# --- jobs in their real image --------------------------------------------------------------------------------------


@sandbox
@pytest.mark.images
def test_a_job_runs_in_its_pulled_image_read_only_with_the_images_environment(gitlab_images, gitlab_client,
                                                                              minimal_image_ref):
    project = _project(gitlab_images, gitlab_client)
    ci = (
        "verify:\n"
        f"  image: {minimal_image_ref}\n"
        "  variables: {GREETING: hello}\n"
        "  script:\n"
        "    - mkdir -p out\n"
        "    - grep PRETTY_NAME /etc/os-release > out/os.txt\n"
        "    - python3 -c \"import sys, os; print(sys.executable, os.environ['PATH'], os.environ['GREETING'])\" "
        "> out/python.txt\n"
        "    - if touch /usr/written 2>/dev/null; then echo writable; else echo read-only; fi > out/root.txt\n"
        "    - python3 -c \"import nbclient\" 2> out/nbclient.txt || true\n"
        "  artifacts:\n"
        "    paths: [out/]\n"
    )
    _commit(project, {".gitlab-ci.yml": ci}, message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})
    finished = _wait(project, pipeline.id, timeout=300)
    [job] = finished.jobs.list(get_all=True)
    trace = project.jobs.get(job.id).trace().decode()
    assert finished.status == "success", trace

    files = _zip(project.jobs.get(job.id).artifacts())
    assert b"Debian GNU/Linux 12" in files["out/os.txt"]
    image_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # its config's Env
    assert files["out/python.txt"] == f"/usr/bin/python3 {image_path} hello\n".encode()  # and the CI variable
    assert files["out/root.txt"] == b"read-only\n"
    assert b"No module named 'nbclient'" in files["out/nbclient.txt"]  # the kernel environment has it; the image not
    assert f"Pulling docker image {minimal_image_ref}" in trace and "kernel environment" not in trace


def test_a_job_whose_image_cannot_be_pulled_fails_as_a_runner_that_cannot_pull(gitlab_server, gitlab_client):
    if gitlab_server.sandbox_problem():
        pytest.skip(gitlab_server.sandbox_problem())
    from tests.images.registry import free_port

    image = f"127.0.0.1:{free_port()}/nothing/here@sha256:" + "0" * 64  # no registry listens there
    project = _project(gitlab_server, gitlab_client)
    _commit(project, {".gitlab-ci.yml": f"verify:\n  image: {image}\n  script: [echo never]\n"}, message="CI [skip ci]")
    pipeline = project.pipelines.create({"ref": "main"})

    assert _wait(project, pipeline.id, timeout=60).status == "failed"
    [job] = pipeline.jobs.list(get_all=True)
    assert job.failure_reason == "image_pull_failure"
    trace = project.jobs.get(job.id).trace().decode()
    assert f'ERROR: Job failed: failed to pull image "{image}" with specified policies [always]' in trace
    assert "$ echo never" not in trace
