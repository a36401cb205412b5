"""A run removes its folder with remove_tree (tests/repository/runners/test_cleanup.py shows what that handles
that shutil.rmtree does not), whichever way the run ends."""

import pytest

from repository import demo
from repository.models import Blob
from repository.services import runs
from repository.services.runs import run_execute, run_request
from tests.factories import demo_draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def removed(monkeypatch):
    """The folders runs.py removes, each recorded with whether it still existed afterwards."""
    calls = []
    real = runs.remove_tree

    def recording(path):
        failures = real(path)
        calls.append((path.name.startswith("nbarchive-stage-"), path.exists(), failures))
        return failures

    monkeypatch.setattr(runs, "remove_tree", recording)
    return calls


def test_a_run_whose_staging_fails_removes_its_folder(user, removed):
    version = demo_draft(user)
    # The stored data file no longer matches its checksum: staging fails after the notebook was placed.
    Blob.objects.filter(version_files__version=version, version_files__path=demo.DATA_PATH).update(sha256="0" * 64)
    run = run_request(version=version, requested_by=user)

    run = run_execute(run_pk=run.pk)

    assert run.verdict == "execution_failed" and "our storage is damaged" in run.message
    assert removed == [(True, False, [])]


def test_a_run_the_sandbox_cannot_start_removes_its_folder(user, settings, removed):
    settings.RUNNER_KERNEL_PYTHON = "/nonexistent/kernel-env/bin/python"
    run = run_request(version=demo_draft(user), requested_by=user)

    with pytest.raises(runs.InfrastructureError):
        run_execute(run_pk=run.pk)

    assert removed == [(True, False, [])]
