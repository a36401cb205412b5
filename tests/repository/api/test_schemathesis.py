"""schemathesis against a live server, with a token: generated requests, valid and invalid, on every operation of
the OpenAPI schema, the GitLab link and import endpoints included (against the fake GitLab). No answer may be a
5xx, and every answer must match the schema. Bounded: a few examples per operation, well under two minutes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from repository.services.drafts import record_create
from repository.services.tokens import token_create
from tests.factories import UserFactory, notebook_bytes, published_version, submitted_review, upload

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Longer runs (to hunt, not in CI): NBARCHIVE_SCHEMATHESIS_EXAMPLES=100 NBARCHIVE_SCHEMATHESIS_PHASES=...
MAX_EXAMPLES = int(os.environ.get("NBARCHIVE_SCHEMATHESIS_EXAMPLES", "8"))
# The coverage phase (boundary values of every field) takes about two minutes more here; run it when hunting.
PHASES = os.environ.get("NBARCHIVE_SCHEMATHESIS_PHASES", "examples,fuzzing")

pytestmark = pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed (the test extra)")


GITLAB_PROJECT = "jane/fuzzed"


@pytest.fixture
def fake_gitlab(settings, monkeypatch):
    """The fake GitLab (tests/fakes/gitlab.py) as the instance records link to, with one public project and a tag;
    imports are queued (recorded), not run: the fuzzing is of the API, tests/repository/gitlab runs imports."""
    from repository.gitlab import tasks
    from tests.fakes.gitlab import FakeGitLab

    with FakeGitLab() as server:
        settings.GITLAB_URL, settings.GITLAB_TOKEN = server.url, server.token
        server.push_pipelines = False
        server.create_project(GITLAB_PROJECT, files={"analysis.ipynb": notebook_bytes()})
        server.set_project(GITLAB_PROJECT, visibility="public")
        server.create_tag(GITLAB_PROJECT, "v2.0", "main")
        imports = []
        monkeypatch.setattr(tasks.gitlab_import_task, "delay", imports.append)
        yield server


@pytest.fixture
def fuzzed(transactional_db, no_queue, fake_gitlab, tmp_path):
    """A user's token and a schemathesis config that points the path parameters at rows this user can reach (a
    draft, a published version linked to a GitLab project, a review request and its run), so generated requests
    get past the 404s."""
    from moderation.models import ReviewRequest
    from repository.access.models import AccessGrant, AccessRequest, ShareLink
    from repository.gitlab.services.imports import gitlab_link_set
    from repository.models import ExecutionRun, FileAccess, Version
    from repository.services.runs import run_request

    user = UserFactory()
    draft = record_create(owner=user, metadata={"title": "Fuzzed"})
    upload(draft, user, path="analysis.ipynb")
    published = published_version(user, UserFactory())
    gitlab_link_set(record=published.record, actor=user, project=GITLAB_PROJECT)
    # Restricted, with a pending request, a grant and a share link: the access endpoints (issue 17) reach rows.
    Version.objects.filter(pk=published.pk).update(access_files=FileAccess.RESTRICTED)
    reader = UserFactory()
    AccessRequest.objects.create(record=published.record, number=1, requester=reader, message="May I?")
    grant = AccessGrant.objects.create(record=published.record, user=UserFactory(), granted_by=user)
    link = ShareLink.objects.create(record=published.record, created_by=user, token_sha256="0" * 64)
    review = submitted_review(user)
    run = ExecutionRun.objects.filter(version=review.version).first() or run_request(version=review.version,
                                                                                     requested_by=user)
    assert ReviewRequest.objects.filter(pk=review.pk).exists()
    _, raw = token_create(user=user, name="schemathesis")
    published_parameters = (f'"path.record_id" = "{published.record.public_id}", "path.number" = 1, '
                            f'"path.grant_id" = {grant.pk}, "path.link_id" = {link.pk}')
    config = tmp_path / "schemathesis.toml"
    config.write_text(f"""
[[operations]]
include-path-regex = "^/api/records/[{{]record_id[}}]/draft"
exclude-method = "DELETE"
parameters = {{ "path.record_id" = "{draft.record.public_id}", "path.file_path" = "analysis.ipynb" }}

[[operations]]
include-path-regex = "^/api/records/[{{]record_id[}}]($|/versions|/gitlab$|/access)"
parameters = {{ {published_parameters} }}

[[operations]]
include-path-regex = "^/api/requests/"
parameters = {{ "path.request_id" = {review.pk} }}

[[operations]]
include-path-regex = "^/api/runs/"
parameters = {{ "path.run_id" = "{run.run_id}" }}
""")
    return raw, config


def test_no_generated_request_is_a_server_error_and_every_answer_matches_the_schema(live_server, fuzzed, tmp_path):
    token, config = fuzzed
    report = tmp_path / "report.json"
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "run", f"{live_server.url}/api/schema/",
        "--url", live_server.url,
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--mode", "all",
        "--phases", PHASES,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "20261207",
        "--workers", "1",
        "--request-timeout", "20",
        "--suppress-health-check", "all",
        "--no-shrink",
        "--report", "json", "--report-json-path", str(report),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=tmp_path,
                            env={**os.environ, "NO_COLOR": "1"})

    output = result.stdout + result.stderr
    print(output)  # the summary: operations, cases and checks run
    assert result.returncode == 0, output[-6000:]
    assert report.exists() and json.loads(report.read_text()), output[-2000:]
