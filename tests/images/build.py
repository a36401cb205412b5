"""Real container images for the tests, built from Debian packages and cached by a hash of their recipe.

`build_image("minimal")` returns an OCI layout (tag `img`) made with `mmdebstrap --variant=apt` and `umoci`, in
`${NBARCHIVE_IMAGE_BUILD_CACHE:-~/.cache/nbarchive/test-images}/<recipe sha256>/layout`, outside the checkout, so
a machine builds each recipe once (a cold build takes about a minute; a file lock keeps two test runs from
building the same recipe twice). `build_tiny_image(directory, name, files)` makes a one-layer image of a few files
in well under a second, for the tests that need many images and no Python.

Run it as a script to build (or show) the cached images: `python -m tests.images.build [minimal scientific ...]`.
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAG = "img"
SUITE = "bookworm"
# The machines are Debian 12 and reach Debian's mirror; the same suites as the host's apt sources.
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
IMAGE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
RECIPES = {
    "minimal": ("python3", "python3-ipykernel"),
    "scientific": ("python3", "python3-ipykernel", "python3-numpy", "python3-scipy", "python3-matplotlib",
                   "fonts-dejavu-core", "fontconfig"),
}
# The GitLab path's collector runs inside the CI job, so there the image must also carry nbclient (see
# repository/gitlab/job.py): the same two images with Debian's python3-nbclient (and nbformat) added.
RECIPES["minimal-nbclient"] = (*RECIPES["minimal"], "python3-nbclient")
RECIPES["scientific-nbclient"] = (*RECIPES["scientific"], "python3-nbclient")
# Documentation, manual pages and translations make the images larger and the tests slower, and no test reads them.
# Recommended packages are left out explicitly (mmdebstrap leaves them out already: the images came out byte for byte
# the same); the scientific image is still 1.2 GB unpacked because Debian's scipy depends on pythran, hence g++ and
# the boost headers.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
APT_OPTIONS = ('Acquire::Languages "none"', 'APT::Install-Recommends "false"')
REQUIRED_TOOLS = ("mmdebstrap", "umoci")


def build_cache_root() -> Path:
    configured = os.environ.get("NBARCHIVE_IMAGE_BUILD_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "nbarchive" / "test-images"


def recipe(name: str) -> dict:
    return {"format": 1, "suite": SUITE, "variant": "apt", "packages": sorted(RECIPES[name]),
            "mirrors": list(MIRRORS), "dpkg_excludes": list(DPKG_EXCLUDES), "apt_options": list(APT_OPTIONS),
            "env": list(IMAGE_ENV)}


def recipe_hash(name: str) -> str:
    return hashlib.sha256(json.dumps(recipe(name), sort_keys=True).encode()).hexdigest()


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def build_image(name: str) -> Path:
    """The OCI layout of the named recipe, built now unless this machine has built it before."""
    target = build_cache_root() / recipe_hash(name)
    layout = target / "layout"
    if (target / "build.json").exists():
        return layout
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building this recipe right now
        if (target / "build.json").exists():
            return layout
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as work:
            started = time.monotonic()
            rootfs_tar = Path(work) / "rootfs.tar"
            _run(["mmdebstrap", "--variant=apt", "--quiet", f"--include={','.join(RECIPES[name])}",
                  *[f"--aptopt={option}" for option in APT_OPTIONS],
                  *[f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES],
                  SUITE, str(rootfs_tar), *MIRRORS], timeout=1800)
            staged = Path(work) / "image"
            _layout_from_tar(staged / "layout", rootfs_tar, Path(work) / "bundle")
            seconds = round(time.monotonic() - started, 1)
            (staged / "build.json").write_text(json.dumps(
                {"name": name, "recipe": recipe(name), "build_seconds": seconds,
                 "rootfs_tar_bytes": rootfs_tar.stat().st_size}, indent=2))
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)
    return layout


def build_tiny_image(directory: Path, name: str, files: dict[str, bytes], *, env: tuple[str, ...] = IMAGE_ENV,
                     prepare=None) -> Path:
    """A one-layer OCI layout at directory/name holding just `files` (path inside the image -> bytes);
    `prepare(rootfs)` may change the tree before it is packed (modes, device nodes)."""
    layout = directory / name
    with tempfile.TemporaryDirectory(dir=directory) as work:
        rootfs = Path(work) / "rootfs"
        for path, content in files.items():
            target = rootfs / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        if prepare:
            prepare(rootfs)
        tar = Path(work) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], timeout=60)
        _layout_from_tar(layout, tar, Path(work) / "bundle", env=env)
    return layout


def layout_manifest_digest(layout: Path) -> str:
    """The digest of the (only) manifest the layout's index names: what the image is pinned by once pushed."""
    index = json.loads((layout / "index.json").read_text())
    return index["manifests"][0]["digest"]


def _layout_from_tar(layout: Path, rootfs_tar: Path, bundle: Path, *, env: tuple[str, ...] = IMAGE_ENV) -> None:
    rootless = ["--rootless"] if os.geteuid() != 0 else []
    image = f"{layout}:{TAG}"
    _run(["umoci", "init", "--layout", str(layout)], timeout=60)
    _run(["umoci", "new", "--image", image], timeout=60)
    _run(["umoci", "unpack", *rootless, "--image", image, str(bundle)], timeout=600)
    # As root the tar keeps owners, modes and device nodes, as an image built by a container engine would.
    _run(["tar", "-C", str(bundle / "rootfs"), "--numeric-owner", "-xpf", str(rootfs_tar)], timeout=600)
    _run(["umoci", "repack", "--image", image, str(bundle)], timeout=1200)
    _run(["umoci", "config", "--image", image, *[f"--config.env={item}" for item in env],
          "--config.cmd=/usr/bin/python3"], timeout=60)
    _run(["umoci", "gc", "--layout", str(layout)], timeout=60)
    shutil.rmtree(bundle, ignore_errors=True)


def _run(command: list[str], *, timeout: float) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({result.returncode}): {result.stderr[-2000:]}")


if __name__ == "__main__":
    for image_name in sys.argv[1:] or list(RECIPES):
        cached = (build_cache_root() / recipe_hash(image_name) / "build.json").exists()
        began = time.monotonic()
        built = build_image(image_name)
        print(f"{image_name}: {built} ({'cached' if cached else 'built'} in {time.monotonic() - began:.1f} s; "
              f"digest {layout_manifest_digest(built)})")
