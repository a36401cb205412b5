"""Finding the kernel's Python the way the image means it, and saying clearly when there is none."""

import os

import pytest

from repository.errors import ImageUnavailable
from repository.runners.images import inspect_image
from repository.runners.images.inspection import search_path

pytestmark = [pytest.mark.images, pytest.mark.sandbox]
CONDA_PATH = "PATH=/opt/conda/bin:/usr/local/bin:/usr/bin:/bin"


def test_an_image_without_python_is_unsupported_and_the_message_says_where_we_looked(image_cache_factory,
                                                                                     tiny_image_ref):
    ref = tiny_image_ref("no-python", {"/etc/os-release": b"ID=none\n"})

    with image_cache_factory().use(ref) as image:
        inspection = inspect_image(image)

    assert not inspection.supported
    assert inspection.problem == ("unsupported image: no python with ipykernel found (looked in /usr/local/sbin, "
                                  "/usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin, /opt/conda/bin)")


def test_the_search_follows_the_images_path_and_names_each_python_that_failed(image_cache_factory, tiny_image_ref):
    ref = tiny_image_ref("conda-like", {"/opt/conda/bin/python": b"not a program"}, env=(CONDA_PATH,))

    with image_cache_factory().use(ref) as image:
        assert search_path(image) == ("/opt/conda/bin", "/usr/local/bin", "/usr/bin", "/bin")
        inspection = inspect_image(image)

    assert inspection.problem.startswith("unsupported image: no python with ipykernel found (looked in "
                                         "/opt/conda/bin, /usr/local/bin, /usr/bin, /bin)")
    assert "/opt/conda/bin/python did not run" in inspection.problem


def test_the_inspection_is_kept_beside_the_image(shared_image_cache, minimal_image_ref):
    with shared_image_cache.use(minimal_image_ref) as image:
        first = inspect_image(image)
        stored = (image.path / "inspection.json").stat().st_mtime_ns
        again = inspect_image(image)

    assert again == first and (image.path / "inspection.json").stat().st_mtime_ns == stored


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root worker runs the sandbox as another uid")
def test_a_cache_the_sandbox_uid_cannot_reach_is_the_operators_problem_not_the_images(image_cache_factory,
                                                                                     tiny_image_ref, tmp_path):
    ref = tiny_image_ref("unreachable", {"/etc/x": b"x"})
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    cache = image_cache_factory(root=private)

    with cache.use(ref) as image, pytest.raises(ImageUnavailable) as refused:
        inspect_image(image)

    assert "cannot reach" in refused.value.detail and "o+x" in refused.value.detail
