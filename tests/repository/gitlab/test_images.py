"""RUNNER=gitlab against real images: the fake GitLab's runner pulls the job's pinned image from the tests' registry
and runs the job in its unpacked root filesystem (tests/fakes/gitlab_job_roots.py), so the image decides what the
notebook can import, as it does on a GitLab runner with the Docker executor.

The images (tests/images/build.py): `scientific-nbclient` and `minimal-nbclient` are Debian's python3 with
ipykernel and nbclient, with and without numpy/scipy/matplotlib; `minimal` has ipykernel but no nbclient, which the
GitLab job needs because its collector runs inside the CI job (repository/gitlab/job.py).
"""

import io

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from repository.models import Version
from repository.services.drafts import record_create
from repository.services.files import draft_file_upload
from repository.services.runs import InfrastructureError, run_execute, run_request
from tests.repository.gitlab.test_runner import marks, no_queue, only_pipeline, use_fake_gitlab  # noqa: F401

pytestmark = pytest.mark.images
MISSING_DIGEST = "sha256:" + "0" * 64


@pytest.fixture
def gitlab_in_images(gitlab_runner, settings, gitlab_images, live_server):
    return use_fake_gitlab(settings, gitlab_images, live_server)


def scipy_draft(user, image: str) -> Version:
    """A notebook as its author ran it in a scientific image: scipy imported, one integral printed."""
    notebook = new_notebook(cells=[
        new_code_cell("import scipy", execution_count=1),
        new_code_cell("from scipy import integrate\nprint(round(integrate.quad(lambda x: x * x, 0, 3)[0], 6))",
                      execution_count=2, outputs=[new_output("stream", name="stdout", text="9.0\n")]),
    ])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    data = nbformat.writes(notebook).encode()
    version = record_create(owner=user, metadata={
        "title": "Integral", "description": "Integrates with scipy", "license": "CC-BY-4.0",
        "creators": [{"name": "Doe, Jane"}], "container_image": image})
    draft_file_upload(version=version, actor=user, path="integral.ipynb", stream=io.BytesIO(data),
                      content_length=len(data))
    return Version.objects.get(pk=version.pk)


def job_of(server) -> dict:
    return server.job(only_pipeline(server)["jobs"][0]["id"])


@marks()
def test_a_scipy_notebook_reproduces_in_the_scientific_image_it_pins(user, gitlab_in_images,
                                                                     scientific_nbclient_image_ref):
    run = run_execute(run_pk=run_request(version=scipy_draft(user, scientific_nbclient_image_ref),
                                         requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "reproduced", (run.message, run.logs[-3000:])
    environment = run.report["environment"]
    assert environment["runner"] == "gitlab" and environment["image"] == scientific_nbclient_image_ref
    assert environment["kernel_isolation"] == "separate-uid"
    # What ran is the image's Debian Python and scipy, not the kernel environment's.
    assert environment["python_version"].startswith("3.11.")
    assert "scipy" in {name.lower() for name in environment["packages"]}
    trace = job_of(gitlab_in_images)["trace"]
    assert f"Pulling docker image {scientific_nbclient_image_ref}" in trace
    assert "kernel environment" not in trace


@marks()
def test_the_same_notebook_in_the_minimal_image_fails_naming_the_missing_module(user, gitlab_in_images,
                                                                              minimal_nbclient_image_ref):
    run = run_execute(run_pk=run_request(version=scipy_draft(user, minimal_nbclient_image_ref),
                                         requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "execution_failed", (run.message, run.logs[-3000:])
    assert "ModuleNotFoundError: No module named 'scipy'" in run.message
    assert "The pinned image lacks this package" in run.message
    assert run.report["environment"]["image"] == minimal_nbclient_image_ref
    assert run.report["environment"]["kernel_isolation"] == "separate-uid"


@marks()
def test_an_image_without_nbclient_is_an_unsupported_image_naming_what_the_job_needs(user, gitlab_in_images,
                                                                                     minimal_image_ref):
    run = run_execute(run_pk=run_request(version=scipy_draft(user, minimal_image_ref), requested_by=user).pk)

    assert run.status == "finished" and run.verdict == "unsupported_image", (run.message, run.logs[-3000:])
    assert run.message.startswith("Unsupported image:")
    assert "cannot import nbclient, nbformat" in run.message and "RUNNER=image needs only ipykernel" in run.message
    assert run.report["environment"]["image"] == minimal_image_ref


@marks()
def test_an_image_whose_digest_the_registry_lacks_is_a_pull_failure_for_the_operator(user, gitlab_in_images,
                                                                                      image_registry):
    from repository.tasks import run_verification_task

    missing = f"{image_registry.host}/nbarchive-tests/minimal@{MISSING_DIGEST}"
    run = run_request(version=scipy_draft(user, missing), requested_by=user)

    with pytest.raises(InfrastructureError, match="could not pull the pinned image"):
        run_execute(run_pk=run.pk)
    job = job_of(gitlab_in_images)
    assert job["status"] == "failed" and job["failure_reason"] == "image_pull_failure"
    assert f'ERROR: Job failed: failed to pull image "{missing}"' in job["trace"]
    run.refresh_from_db()
    assert run.status == "queued" and not run.verdict  # put back, to be retried

    run_verification_task.apply(args=[run.pk])  # eager: the retries run at once, then the run is given up

    run.refresh_from_db()
    assert run.status == "error" and not run.verdict
    assert "could not pull the pinned image" in run.message and "image_pull_failure" in run.message
