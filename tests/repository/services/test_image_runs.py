"""Runs with RUNNER=image through the service a worker calls (`run_execute`): what goes wrong with the image is the
operator's, a run error and never a notebook verdict; the run records which image really ran."""

import pytest
from django.urls import reverse

from repository.models import ExecutionRun, Version
from repository.services.runs import InfrastructureError, run_execute, run_request
from tests.factories import demo_draft
from tests.images.proxy import RegistryProxy

pytestmark = [pytest.mark.django_db, pytest.mark.images, pytest.mark.sandbox]


@pytest.fixture
def image_settings(settings, image_registry, tmp_path_factory):
    """RUNNER=image with an image cache of its own, the loopback registry reached over plain HTTP."""
    from tests.images.fixtures import _reachable_folder, _remove

    folder = _reachable_folder("nbarchive-run-image-cache-")
    settings.RUNNER = "image"
    settings.IMAGE_CACHE_DIR = str(folder / "cache")
    settings.IMAGE_INSECURE_REGISTRIES = [image_registry.host]
    yield settings
    _remove(folder)


def queued_run_in(user, image: str) -> ExecutionRun:
    version = demo_draft(user)
    Version.objects.filter(pk=version.pk).update(container_image=image)
    return run_request(version=Version.objects.get(pk=version.pk), requested_by=user)


def report_page(client, user, run) -> str:
    client.force_login(user)
    return client.get(reverse("repository:run_report", kwargs={"run_id": run.run_id})).content.decode()


@pytest.mark.parametrize("image_name", ["scientific", "minimal"])
def test_the_run_and_its_report_page_say_which_image_really_ran(client, user, no_queue, local_blob_storage,
                                                                image_settings, image_name, request):
    image = request.getfixturevalue(f"{image_name}_image_ref")
    run = queued_run_in(user, image)

    run = run_execute(run_pk=run.pk)

    assert run.status == ExecutionRun.Status.FINISHED and run.runner == "image"
    environment = run.environment
    assert environment["image"] == image and environment["manifest_digest"].startswith("sha256:")
    assert environment["python_version"].startswith("3.")
    numpy = [package for package in environment["packages"] if package.startswith("numpy==")]
    assert bool(numpy) == (image_name == "scientific")  # read from inside the image, not the worker's
    html = report_page(client, user, run)
    assert image in html and environment["manifest_digest"] in html
    assert f"Python {environment['python_version']}" in html and "not the pinned image" not in html
    assert (numpy[0] in html) if numpy else ("numpy==" not in html)


def test_a_missing_image_goes_back_to_the_queue_without_a_verdict(user, no_queue, local_blob_storage, image_settings,
                                                                  image_registry):
    run = queued_run_in(user, f"{image_registry.host}/nbarchive-tests/absent@sha256:{'0' * 64}")

    with pytest.raises(InfrastructureError):
        run_execute(run_pk=run.pk)

    run = ExecutionRun.objects.get(pk=run.pk)
    assert run.status == ExecutionRun.Status.QUEUED and run.verdict == ""  # retried by the task, with backoff


def test_a_registry_serving_another_digest_ends_the_run_as_an_error_at_once(user, no_queue, local_blob_storage,
                                                                            image_settings, image_registry,
                                                                            tiny_image_ref):
    pinned = tiny_image_ref("honest", {"/etc/honest": b"1"}).split("@")[1]
    other = tiny_image_ref("other", {"/etc/other": b"2"}).split("@")[1]
    with RegistryProxy(image_registry.host, lie_about={pinned: f"tiny/other@{other}"}) as lying:
        image_settings.IMAGE_INSECURE_REGISTRIES = [image_registry.host, lying.host]
        run = queued_run_in(user, f"{lying.host}/tiny/honest@{pinned}")

        run = run_execute(run_pk=run.pk)

    assert run.status == ExecutionRun.Status.ERROR and run.verdict == ""
    assert "digest" in run.message and other in run.message


def test_an_image_without_a_kernel_is_the_verdict_unsupported_image(user, no_queue, local_blob_storage,
                                                                    image_settings, tiny_image_ref):
    run = queued_run_in(user, tiny_image_ref("no-kernel", {"/etc/os-release": b"ID=none\n"}))

    run = run_execute(run_pk=run.pk)

    assert run.status == ExecutionRun.Status.FINISHED and run.verdict == "unsupported_image"
    assert "no python with ipykernel" in run.message


def test_the_pull_progress_is_recorded_on_the_running_run(client, user, no_queue, local_blob_storage):
    from repository.services.runs import _RunObserver

    run = queued_run_in(user, "registry.example.org/x@sha256:" + "1" * 64)
    ExecutionRun.objects.filter(pk=run.pk).update(status=ExecutionRun.Status.RUNNING)
    observer = _RunObserver(run.pk)

    observer.pull_progress(0, 4096)
    observer.pull_progress(1024, 4096)  # within a second of the last: not written
    assert ExecutionRun.objects.get(pk=run.pk).environment == {"pull": {"done_bytes": 0, "total_bytes": 4096}}
    observer.pull_progress(4096, 4096)  # the end is always written
    assert ExecutionRun.objects.get(pk=run.pk).environment == {"pull": {"done_bytes": 4096, "total_bytes": 4096}}
    page = report_page(client, user, run)
    assert "Pulling the image</dt>" in page and "4.0\xa0KB of 4.0\xa0KB" in page
