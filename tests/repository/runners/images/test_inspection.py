"""Finding the kernel's Python the way the image means it, and saying clearly when there is none."""

import os
import time
from pathlib import Path

import pytest

from repository.errors import ImageUnavailable
from repository.runners.images import inspect_image, run_in_image
from repository.runners.images.inspection import OUTPUT_LIMIT_BYTES, search_path

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


def shell_image_files(python_script: str) -> dict[str, bytes]:
    """An image whose `python3` is a shell script (the host's dash and the C library it needs): it does whatever
    an author's image can make its Python do before anything of ours runs (a sitecustomize, say)."""
    files = {path: Path(path).resolve().read_bytes()
             for path in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2")}
    files["/bin/sh"] = Path("/bin/dash").resolve().read_bytes()
    files["/usr/bin/python3"] = python_script.encode()
    return files


def executable(rootfs: Path) -> None:
    for path in ("bin/sh", "usr/bin/python3", "lib64/ld-linux-x86-64.so.2"):
        (rootfs / path).chmod(0o755)


needs_dash = pytest.mark.skipif(not Path("/bin/dash").exists() or not Path("/lib64/ld-linux-x86-64.so.2").exists(),
                                reason="the test image borrows the host's dash and x86-64 C library")


@needs_dash
def test_an_images_python_that_prints_bwrap_lines_is_the_images_matter_not_the_operators(image_cache_factory,
                                                                                         tiny_image_ref):
    """It used to be taken for bwrap failing to start (ImageUnavailable: retried, the operator's problem); bwrap
    itself says it started the image's Python, so the image is unsupported, as any Python that does not run."""
    liar = "#!/bin/sh\necho 'bwrap: Creating new namespace failed: Operation not permitted' >&2\nexit 1\n"
    ref = tiny_image_ref("bwrap-liar", shell_image_files(liar), prepare=executable)

    with image_cache_factory().use(ref) as image:
        inspection = inspect_image(image)

    assert not inspection.supported
    assert "/usr/bin/python3 did not run (bwrap: Creating new namespace failed" in inspection.problem


@needs_dash
def test_an_images_python_that_floods_its_output_is_cut_off_at_the_cap(image_cache_factory, tiny_image_ref):
    """Its output was read whole into the worker's memory for up to 120 s; now it is cut at OUTPUT_LIMIT_BYTES."""
    flood = "#!/bin/sh\nwhile :; do echo " + "x" * 4000 + "; echo " + "y" * 4000 + " >&2; done\n"
    ref = tiny_image_ref("flood", shell_image_files(flood), prepare=executable)

    with image_cache_factory().use(ref) as image:
        started = time.monotonic()
        result = run_in_image(image, ["/usr/bin/python3"], timeout=110)
        seconds = time.monotonic() - started
        inspection = inspect_image(image)

    assert seconds < 60, "the flood ran until the timeout instead of stopping at the cap"
    assert "more than 4194304 bytes of output" in result.stderr
    assert 0 < len(result.stdout) <= OUTPUT_LIMIT_BYTES and 0 < len(result.stderr) <= OUTPUT_LIMIT_BYTES + 100
    assert not result.sandbox_failed
    assert not inspection.supported and "/usr/bin/python3 did not run" in inspection.problem


def test_a_command_bwrap_cannot_execute_is_reported_as_such(shared_image_cache, minimal_image_ref):
    with shared_image_cache.use(minimal_image_ref) as image:
        missing = run_in_image(image, ["/no/such/python"])
        ran = run_in_image(image, ["python3", "-c", "import sys; print('bwrap: x', file=sys.stderr); sys.exit(3)"])

    assert missing.sandbox_failed and "bwrap: execvp /no/such/python" in missing.stderr
    assert not ran.sandbox_failed and ran.returncode == 3
