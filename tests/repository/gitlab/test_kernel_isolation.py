"""RUNNER=gitlab with the notebook that attacks its driver (tests/repository/runners/hostile_notebooks.py): in the
CI job, the collector and the kernel share the job, so the job runs the kernel under another uid when it can (the
fake's jobs run as root, as a Docker executor's do) and says in the report when it could not (a non-root job
user, as docker-stacks' jovyan). The run page shows which, with a warning when the uid was shared.
"""

import io

import pytest
from django.urls import reverse

from repository.models import Version
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload
from repository.services.runs import run_execute, run_request
from tests.factories import IMAGE, demo_draft
from tests.repository.gitlab.test_runner import gitlab_env, marks, no_queue  # noqa: F401 - fixtures
from tests.repository.runners.hostile_notebooks import forging_notebook

WARNING = "could have tampered with this verdict"


def forging_draft(user) -> Version:
    data = forging_notebook("forge.ipynb").encode()
    version = record_create(owner=user, metadata={
        "title": "Forged", "description": "Claims outputs it cannot give", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": IMAGE})
    draft_file_upload(version=version, actor=user, path="forge.ipynb", stream=io.BytesIO(data),
                      content_length=len(data))
    return Version.objects.get(pk=version.pk)


def run_page(client, user, run) -> str:
    client.force_login(user)
    return client.get(reverse("repository:run_report", kwargs={"run_id": run.run_id})).content.decode()


@marks()
def test_a_root_job_runs_the_kernel_under_another_uid_and_the_forging_notebook_gets_an_honest_verdict(
        user, gitlab_env, client):  # noqa: F811 - the fixture
    assert gitlab_env.job_user == "root"
    run = run_execute(run_pk=run_request(version=forging_draft(user), requested_by=user).pk)

    assert run.status == "finished", (run.message, run.logs[-3000:])
    assert run.verdict == "execution_failed", (run.verdict, run.message, run.logs[-3000:])
    assert "RuntimeError: this notebook does not run" in run.message
    assert run.report["environment"]["kernel_isolation"] == "separate-uid"
    assert run.report["execution"]["outcome"] != "completed"
    assert "kernel isolation: separate-uid" in run.logs
    html = run_page(client, user, run)
    assert "Kernel isolation" in html and "separate-uid" in html and WARNING not in html


@marks()
def test_a_job_that_cannot_switch_uid_says_so_in_the_report_and_on_the_run_page(
        user, gitlab_env, client, settings):  # noqa: F811 - the fixture
    settings.GITLAB_ALLOW_SHARED_UID = True  # the operator accepts such verdicts (else: error, test_forged_artifacts)
    gitlab_env.job_user = "user"
    run = run_execute(run_pk=run_request(version=demo_draft(user), requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "reproduced", (run.message, run.logs[-3000:])
    assert run.report["environment"]["kernel_isolation"] == "shared-uid"
    html = run_page(client, user, run)
    assert "shared-uid" in html and WARNING in html


@pytest.mark.parametrize("value", ["something-else", None])
def test_an_unknown_isolation_in_the_artifacts_is_reported_as_unknown(value):
    import json
    import zipfile

    from repository.gitlab.artifacts import artifacts_read

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("out/status.json", json.dumps({"outcome": "completed"}))
        bundle.writestr("out/environment.json", json.dumps({"python_version": "3.11", "kernel_isolation": value}))
    archive.seek(0)

    assert artifacts_read(archive, 1000).environment["kernel_isolation"] == "unknown"
