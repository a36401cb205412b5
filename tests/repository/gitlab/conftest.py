"""Fixtures for the GitLab integration: the fake GitLab on loopback (tests/fakes/gitlab.py) and a real
python-gitlab client for it.

- `gitlab_server`: a fresh FakeGitLab per test on 127.0.0.1:<free port>, stopped (running jobs killed) after
  the test. Its jobs' timeouts are capped at 120 s (`max_job_seconds`) so a runaway job cannot hold the suite.
  Its token (the administrator's) is `gitlab_server.token`.
- `gitlab_client`: `gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token)`.
- `gitlab_kernel_env`: `gitlab_server` whose jobs run in the local kernel environment whatever their `image:`
  (these tests name placeholder images that no registry holds), or a skip (with the reason) when jobs cannot
  execute on this machine (no bwrap, no kernel environment).
- `gitlab_images`: `gitlab_server` whose jobs run in their real image, pulled by digest from the tests' registry
  into the session's image cache (tests/images/fixtures.py), as a GitLab runner with the Docker executor runs them.
"""

import gitlab
import pytest

from tests.fakes.gitlab import FakeGitLab
from tests.fakes.gitlab_job_roots import KERNEL_ENV, PULL


@pytest.fixture
def gitlab_server():
    with FakeGitLab(max_job_seconds=120) as server:
        yield server


@pytest.fixture
def gitlab_client(gitlab_server) -> gitlab.Gitlab:
    return gitlab.Gitlab(gitlab_server.url, private_token=gitlab_server.token)


@pytest.fixture
def gitlab_kernel_env(gitlab_server) -> FakeGitLab:
    gitlab_server.images = KERNEL_ENV
    problem = gitlab_server.sandbox_problem()
    if problem:
        pytest.skip(f"the fake GitLab cannot execute jobs here: {problem}")
    return gitlab_server


@pytest.fixture
def gitlab_images(gitlab_server, shared_image_cache) -> FakeGitLab:
    gitlab_server.images = PULL
    gitlab_server.image_cache = shared_image_cache
    problem = gitlab_server.sandbox_problem()
    if problem:
        pytest.skip(f"the fake GitLab cannot execute jobs here: {problem}")
    return gitlab_server
