"""Fixtures for the GitLab integration: the fake GitLab on loopback (tests/fakes/gitlab.py) and a real
python-gitlab client for it.

- `gitlab_server`: a fresh FakeGitLab per test on 127.0.0.1:<free port>, stopped (running jobs killed) after
  the test. Its jobs' timeouts are capped at 120 s (`max_job_seconds`) so a runaway job cannot hold the suite.
  Its token (the administrator's) is `gitlab_server.token`.
- `gitlab_client`: `gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token)`.
- `gitlab_sandbox`: `gitlab_server`, or a skip (with the reason) when jobs cannot execute on this machine
  (no bwrap, no kernel environment): use it in tests whose pipelines must really run.
"""

import gitlab
import pytest

from tests.fakes.gitlab import FakeGitLab


@pytest.fixture
def gitlab_server():
    with FakeGitLab(max_job_seconds=120) as server:
        yield server


@pytest.fixture
def gitlab_client(gitlab_server) -> gitlab.Gitlab:
    return gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token)


@pytest.fixture
def gitlab_sandbox(gitlab_server) -> FakeGitLab:
    problem = gitlab_server.sandbox_problem()
    if problem:
        pytest.skip(f"the fake GitLab cannot execute jobs here: {problem}")
    return gitlab_server
