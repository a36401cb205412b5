"""What a fake GitLab job runs in: the root filesystem of its `image:`, pulled and unpacked the way nbarchive's
`image` runner does it, or (only when a test asks for it) the local kernel environment.

A GitLab runner with the Docker executor pulls the job's image (pull_policy `always`), starts a container of it
and runs the script there, as the image's USER, with the image's Env (its PATH first of all) and the job's CI
variables. The fake does the same without a Docker daemon (FakeGitLab.images chooses):

- "pull", the default: the image is pulled by digest through repository/runners/images, as the image runner
  pulls it (skopeo copies it, the manifest's sha256 is checked against the pin, umoci unpacks it into an
  ImageCache; a lease keeps it from eviction while the job runs). A registry on loopback is reached over plain
  HTTP, every other one over HTTPS, as Docker's default insecure registry (127.0.0.0/8) has it. In the job:
  `/` is the unpacked root filesystem, read-only (a container's is writable; nbarchive's job writes only in its
  checkout and /tmp, so a read-only root catches a job that would come to depend on more); /builds/<project> is
  the writable checkout; /tmp a fresh tmpfs of mode 1777 (as an image's /tmp); /dev/shm a small tmpfs;
  /etc/passwd, group and hostname are the fake's where the image has them (and /etc/hosts, resolv.conf the
  host's, as Docker binds its own). The environment is the image's Env (PATH defaulting to Docker's), HOME and
  HOSTNAME as Docker sets them, then the CI variables. The script runs in the image's bash, or in its sh when it
  has no bash (the runner's shell detection). An image whose config names a non-root USER runs the job as an
  unprivileged uid, as Docker would.
- A pull that fails (digest unknown, registry down, reference not pinned by digest: the fake pulls by digest
  only) fails the job as the runner does: `ERROR: Job failed: failed to pull image ...` in the trace and
  failure_reason `image_pull_failure` (gitlab-runner's since 16.x; an older GitLab gets runner_system_failure).
  Never a fallback to anything else: a real runner has none.
- "kernel-env", for the tests that ask for it (their images are placeholders no registry holds): every image maps
  to the local kernel environment (settings.RUNNER_KERNEL_PYTHON's environment, `var/kernel-env` of this checkout)
  bound read-only at its own path (its console scripts have that path in their shebang lines) and at
  /opt/kernel-env, with its bin/ first on PATH, over the host's /usr; the trace says so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from repository.errors import ImageUnavailable, InvalidImageReference
from repository.runners.cleanup import remove_tree
from repository.runners.image import replaceable_identity_files
from repository.runners.images import CachedImage, ImageCache, ImageLease, PullLimits, RegistryAccess, sandbox_mounts
from repository.runners.images.pull import DEFAULT_PATH

PULL = "pull"
KERNEL_ENV = "kernel-env"
IMAGE_SOURCES = (PULL, KERNEL_ENV)
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KERNEL_ENV = REPO_ROOT / "var" / "kernel-env"
KERNEL_ENV_ALIAS = "/opt/kernel-env"
HOSTNAME = "runner-fake"
JOB_USER_HOME = "/tmp/home"  # the unprivileged job user's home (the fake's /etc/passwd says so)
TMPFS_MB = 512
SHM_MB = 64
MB = 1024 * 1024
# Read-only if present: what a container would have under /etc for name resolution and TLS (kernel-env mode).
ETC_BINDS = ("/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/hosts", "/etc/resolv.conf",
             "/etc/nsswitch.conf", "/etc/localtime", "/etc/mime.types")
DOCKER_BINDS = ("hosts", "resolv.conf")  # what Docker binds over an image's /etc
BASH_PLACES = ("/usr/local/bin/bash", "/usr/bin/bash", "/bin/bash")
PULL_POLICY_LINE = "(manager.go:250:0s)"  # where gitlab-runner's messages say they come from


class ImagePullFailed(Exception):
    """The job's image could not be pulled; the message is what the runner would print after "failed to pull"."""


def sandbox_problem(images: str, kernel_env: Path) -> str | None:
    """Why jobs cannot run on this machine, or None when they can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed on the machine of the fake runner; install the package bubblewrap."
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is needed to drop root before starting the sandbox."
    if images == KERNEL_ENV and not (kernel_env / "bin" / "python3").exists():
        return f"The kernel environment {kernel_env} does not exist; create it with `make kernel-env`."
    if images == PULL:
        missing = [tool for tool in ("skopeo", "umoci") if shutil.which(tool) is None]
        if missing:
            return f"{' and '.join(missing)} not installed: the fake runner pulls job images with them."
    return None


# --- pulling ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DockerDefaultAccess(RegistryAccess):
    """Registries as a Docker daemon reaches them by default: plain HTTP on loopback, HTTPS everywhere else."""

    def tls_verify(self, registry: str) -> bool:
        host = registry.split("]")[0] + "]" if registry.startswith("[") else registry.rsplit(":", 1)[0]
        return not (host == "localhost" or host.startswith("127.") or host == "[::1]") and super().tls_verify(registry)


class FakeRunnerImageCache:
    """The fake runner's own image cache in a temporary folder (reachable by sandbox uids), made on first use."""

    def __init__(self):
        self._folder: Path | None = None
        self._cache: ImageCache | None = None

    def get(self) -> ImageCache:
        if self._cache is None:
            self._folder = Path(tempfile.mkdtemp(prefix="fake-gitlab-images-"))
            self._folder.chmod(0o755)
            self._cache = ImageCache(self._folder / "cache", access=DockerDefaultAccess(), cap_bytes=50 * 1024**3,
                                     limits=PullLimits(max_bytes=20 * 1024**3, timeout_seconds=600))
        return self._cache

    def remove(self) -> None:
        if self._folder is not None:
            remove_tree(self._folder)
            self._folder = self._cache = None


def pull_image(reference: str, cache: ImageCache) -> ImageLease:
    """The image unpacked and leased for the job, or ImagePullFailed."""
    try:
        return cache.acquire(reference)
    except InvalidImageReference as exc:
        raise ImagePullFailed(f"the fake runner pulls images by digest only: {exc.detail}") from exc
    except ImageUnavailable as exc:
        raise ImagePullFailed(exc.detail) from exc


# --- the job's root filesystem ------------------------------------------------------------------------------------
@dataclass
class KernelEnvironmentRoot:
    """The host's /usr with the local kernel environment on it, standing in for any image."""

    kernel_env: Path
    ci_dir: str = "/opt/fake-gitlab-ci"
    shell: str = "/bin/bash"
    is_bash: bool = True

    def user_is_root(self) -> bool:
        return True

    def mounts(self, etc_dir: Path) -> list[str]:
        kernel_env = str(self.kernel_env.resolve())
        arguments = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                     "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin"]
        for path in ETC_BINDS:
            if os.path.exists(path):
                arguments += ["--ro-bind", path, path]
        for name in ("passwd", "group", "hostname"):
            arguments += ["--ro-bind", str(etc_dir / name), f"/etc/{name}"]
        arguments += ["--proc", "/proc", "--dev", "/dev",
                      "--perms", "1777", "--size", str(TMPFS_MB * MB), "--tmpfs", "/tmp",
                      *open_parents(kernel_env, KERNEL_ENV_ALIAS),
                      "--ro-bind", kernel_env, kernel_env, "--symlink", kernel_env, KERNEL_ENV_ALIAS]
        return arguments

    def environment(self, *, as_root: bool) -> dict[str, str]:
        kernel_env = str(self.kernel_env.resolve()) if self.kernel_env.exists() else str(self.kernel_env)
        return {"PATH": f"{kernel_env}/bin:{DEFAULT_PATH}", "HOME": JOB_USER_HOME, "LANG": "C.UTF-8",
                "HOSTNAME": HOSTNAME}


@dataclass
class ImageRoot:
    """An unpacked image as the job's `/`."""

    image: CachedImage
    ci_dir: str = "/fake-gitlab-ci"  # a top-level folder: nothing can be mounted inside the image's read-only dirs

    @property
    def shell(self) -> str:
        return next((place for place in BASH_PLACES if self._has(place)), "/bin/sh")

    @property
    def is_bash(self) -> bool:
        return self.shell != "/bin/sh"

    def user_is_root(self) -> bool:
        return self.image.config.user.split(":")[0] in ("", "root", "0")

    def mounts(self, etc_dir: Path) -> list[str]:
        arguments = sandbox_mounts(self.image.rootfs, shm_mb=SHM_MB, tmp_mb=TMPFS_MB)
        # Over sandbox_mounts' /tmp: an image's /tmp is writable by every uid (the kernel runs under its own).
        arguments += ["--perms", "1777", "--size", str(TMPFS_MB * MB), "--tmpfs", "/tmp"]
        for name in replaceable_identity_files(self.image):
            arguments += ["--ro-bind", str(etc_dir / name), f"/etc/{name}"]
        for name in DOCKER_BINDS:
            if self._has(f"/etc/{name}", regular=True) and os.path.exists(f"/etc/{name}"):
                arguments += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        return arguments

    def environment(self, *, as_root: bool) -> dict[str, str]:
        """Docker's: HOME from the user's passwd entry unless the image sets it, the image's Env, its PATH (or
        Docker's default), HOSTNAME."""
        return {"HOME": "/root" if as_root else JOB_USER_HOME, **self.image.config.env,
                "PATH": self.image.config.path, "HOSTNAME": HOSTNAME}

    def _has(self, path: str, *, regular: bool = False) -> bool:
        target = self.image.rootfs / path.lstrip("/")
        if regular:
            return target.is_file() and not target.is_symlink()
        return os.path.lexists(target)


def open_parents(*paths: str) -> list[str]:
    """bwrap run by root makes the folders leading to a mount point 0700: make them as a container has them."""
    arguments: list[str] = []
    made: set[str] = set()
    for path in paths:
        parents = Path(path).parents
        for parent in reversed(parents[:-1]):  # from the top, without "/"
            if str(parent) not in made:
                made.add(str(parent))
                arguments += ["--perms", "0755", "--dir", str(parent)]
    return arguments
