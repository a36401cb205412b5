"""Pulling real images by digest from a registry on loopback, and everything that must be refused on the way.

The images are built from Debian packages (tests/images/build.py); what a test says about Python and packages is
read from inside the image, so the image decides, not the machine the tests run on.
"""

import os
import re

import pytest

from repository.errors import (
    ImageDigestMismatch,
    ImageNotFound,
    ImagePullTimeout,
    ImageRegistryUnreachable,
    ImageTooLarge,
    ImageUnavailable,
)
from repository.runners.images import inspect_image, run_in_image
from tests.images.proxy import RegistryProxy

pytestmark = [pytest.mark.images, pytest.mark.sandbox]


def _dist_info_version(rootfs, package: str) -> str:
    folder = rootfs / "usr/lib/python3/dist-packages"
    names = [entry.name for entry in folder.iterdir() if re.fullmatch(rf"{package}-[^-]+\.(dist|egg)-info", entry.name)]
    assert len(names) == 1, names
    return re.sub(r"\.(dist|egg)-info$", "", names[0].removeprefix(f"{package}-"))


def test_the_minimal_image_has_its_own_python_with_ipykernel_and_no_numpy(shared_image_cache, minimal_image_ref):
    with shared_image_cache.use(minimal_image_ref) as image:
        inspection = inspect_image(image)

    assert inspection.supported, inspection.problem
    assert inspection.python == "/usr/bin/python3"
    major_minor = ".".join(inspection.python_version.split(".")[:2])
    assert (image.rootfs / f"usr/lib/python{major_minor}").is_dir()  # the version of the image's own Python
    assert inspection.ipykernel_version == _dist_info_version(image.rootfs, "ipykernel")
    names = {name.lower() for name in inspection.packages}
    assert "ipykernel" in names and "numpy" not in names and "scipy" not in names
    assert image.config.env["LANG"] == "C.UTF-8" and "/usr/bin" in image.config.path.split(":")


def test_the_scientific_image_reports_the_numpy_scipy_and_matplotlib_it_ships(shared_image_cache,
                                                                               scientific_image_ref):
    with shared_image_cache.use(scientific_image_ref) as image:
        inspection = inspect_image(image)

    assert inspection.supported, inspection.problem
    for package in ("numpy", "scipy", "matplotlib"):
        assert inspection.packages[package] == _dist_info_version(image.rootfs, package)
    assert not inspection.has_nbclient  # ipykernel alone: the runner drives the kernel from outside


def test_the_image_decides_whether_scipy_imports(shared_image_cache, minimal_image_ref, scientific_image_ref):
    with shared_image_cache.use(scientific_image_ref) as scientific:
        works = run_in_image(scientific, ["python3", "-c", "import scipy; print(scipy.__version__)"])
    with shared_image_cache.use(minimal_image_ref) as minimal:
        fails = run_in_image(minimal, ["python3", "-c", "import scipy"])

    assert works.returncode == 0, works.stderr
    assert works.stdout.strip() == _dist_info_version(scientific.rootfs, "scipy")
    assert fails.returncode == 1
    assert "ModuleNotFoundError: No module named 'scipy'" in fails.stderr


def test_the_sandbox_in_an_image_has_no_network_and_a_read_only_root(shared_image_cache, minimal_image_ref):
    probe = ("import socket, os\n"
             "s = socket.socket()\n"
             "try:\n    s.connect(('1.1.1.1', 53)); print('network')\nexcept OSError as e: print('no network')\n"
             "try:\n    open('/usr/bin/evil', 'w'); print('writable')\nexcept OSError: print('read-only')\n"
             "print(os.getuid())\n")
    with shared_image_cache.use(minimal_image_ref) as image:
        result = run_in_image(image, ["python3", "-c", probe])

    network, root, uid = result.stdout.splitlines()
    assert (network, root) == ("no network", "read-only")
    assert uid != "0"


def test_progress_goes_from_zero_to_the_declared_size(image_cache_factory, tiny_image_ref):
    ref = tiny_image_ref("progress", {"/data/random": os.urandom(3 * 1024 * 1024)})
    seen = []

    with image_cache_factory().use(ref, progress=lambda done, total: seen.append((done, total))) as image:
        pass

    totals = {total for _, total in seen}
    assert totals == {image.download_bytes} and image.download_bytes > 3 * 1024 * 1024
    assert seen[0][0] == 0 and seen[-1][0] == image.download_bytes
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_registry_serving_other_bytes_for_the_pinned_digest_is_refused(image_cache_factory, image_registry,
                                                                          tiny_image_ref):
    pinned = tiny_image_ref("honest", {"/etc/honest": b"1"}).split("@")[1]
    other = tiny_image_ref("other", {"/etc/other": b"2"}).split("@")[1]
    with RegistryProxy(image_registry.host, lie_about={pinned: f"tiny/other@{other}"}) as lying:
        cache = image_cache_factory(insecure=(lying.host,))
        with pytest.raises(ImageDigestMismatch) as refused:
            cache.pull(f"{lying.host}/tiny/honest@{pinned}")

    assert f"whose digest is {other}" in refused.value.detail
    assert not refused.value.retryable
    assert cache.list_images() == [] and not any((cache.root / "tmp").iterdir())


def test_a_missing_image_is_an_infrastructure_error_not_a_verdict(image_cache_factory, minimal_image_ref):
    absent = minimal_image_ref.split("@")[0] + "@sha256:" + "0" * 64

    with pytest.raises(ImageNotFound) as missing:
        image_cache_factory().pull(absent)

    assert isinstance(missing.value, ImageUnavailable) and missing.value.retryable
    assert missing.value.status == 503 and missing.value.code == "image_not_found"
    assert "manifest unknown" in missing.value.detail


def test_a_registry_that_is_down_is_unreachable(image_cache_factory):
    from tests.images.registry import free_port

    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(ImageRegistryUnreachable) as down:
        image_cache_factory(insecure=(host,)).pull(f"{host}/x/y@sha256:{'1' * 64}")

    assert down.value.retryable and "connection refused" in down.value.detail


def test_registries_are_https_unless_listed_as_insecure(image_cache_factory, image_registry, tiny_image_ref):
    ref = tiny_image_ref("https-only", {"/etc/x": b"x"})
    ref = ref.replace(image_registry.host, f"localhost:{image_registry.port}")

    with pytest.raises(ImageRegistryUnreachable) as refused:
        image_cache_factory().pull(ref)  # localhost:PORT is not in IMAGE_INSECURE_REGISTRIES

    assert "HTTP response to HTTPS client" in refused.value.detail
    assert "IMAGE_INSECURE_REGISTRIES" in refused.value.detail


def test_an_image_larger_than_image_max_gb_is_refused_before_download(image_cache_factory, minimal_image_ref):
    cache = image_cache_factory(max_gb=0.01)

    with pytest.raises(ImageTooLarge) as refused:
        cache.pull(minimal_image_ref)

    assert "IMAGE_MAX_GB=0.01" in refused.value.detail and "to download" in refused.value.detail
    assert not refused.value.retryable
    assert cache.pull_log() == [] and not any((cache.root / "tmp").iterdir())


def test_a_small_download_that_unpacks_past_image_max_gb_is_refused(image_cache_factory,
                                                                                      tiny_image_ref):
    ref = tiny_image_ref("zeros", {"/data/zeros": bytes(64 * 1024 * 1024)})  # compresses to ~64 KB
    cache = image_cache_factory(max_gb=16 / 1024)

    with pytest.raises(ImageTooLarge) as refused:
        cache.pull(ref)

    assert "unpacks to more than IMAGE_MAX_GB=0.015625" in refused.value.detail
    assert cache.list_images() == []


def test_a_pull_slower_than_the_timeout_is_stopped_and_names_the_limit(image_cache_factory, image_registry,
                                                                       tiny_image_ref):
    ref = tiny_image_ref("slow", {"/etc/slow": b"s"})
    with RegistryProxy(image_registry.host, blob_delay_seconds=5) as slow:
        cache = image_cache_factory(insecure=(slow.host,), timeout=1.5)
        with pytest.raises(ImagePullTimeout) as stopped:
            cache.pull(ref.replace(image_registry.host, slow.host))

    assert "IMAGE_PULL_TIMEOUT_SECONDS=1.5" in stopped.value.detail and stopped.value.retryable
    assert cache.list_images() == []
