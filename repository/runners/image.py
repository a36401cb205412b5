"""The `image` runner: the notebook's kernel inside the container image its version pins, without a daemon.

The image is pulled by digest once per worker and shared (images/cache.py), inspected for its kernel Python
(images/inspection.py: the image's PATH, then /opt/conda/bin), and the kernel runs with that Python inside the
unpacked root filesystem, read-only, under exactly the sandbox of the local runner (sandbox.py: bubblewrap, a
fresh uid, rlimits, no network, the outside collector with the wall clock and the output cap). The image's Env
reaches the kernel with `--setenv` only; bwrap itself starts under `env -i` with the host's PATH alone.

Whose problem is what:
- the registry is down, the image is missing, a pull times out, skopeo/umoci/bwrap are missing, the sandbox
  cannot start: the operator's, retried later (RunnerUnavailable / SandboxUnavailable);
- the registry serves other bytes than the pinned digest, the image is over IMAGE_MAX_GB, the reference is not a
  pinned one: the run ends `error` at once with the message (RunnerGaveUp); retrying cannot help;
- the image has no Python with ipykernel: the verdict `unsupported_image`, naming what is missing;
- everything the notebook does: the verdicts of the local runner.
"""

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from repository.errors import ImageUnavailable, InvalidImageReference
from repository.runners.base import Outcome, RunnerGaveUp, RunnerUnavailable, RunResult, RunSpec, SandboxLimits
from repository.runners.images import (
    CachedImage,
    ImageCache,
    ImageInspection,
    inspect_image,
    sandbox_environment,
    sandbox_mounts,
)
from repository.runners.local import KERNEL_ISOLATION, result_from_kernel_run
from repository.runners.sandbox import (
    HOST_PATH,
    IDENTITY_FILES,
    SANDBOX_ENV,
    KernelView,
    SandboxUnavailable,
    run_kernel,
    run_uid,
)

# Ours win over the image's: reproducibility (hash seed, thread counts) and a writable home and caches.
KERNEL_OVERRIDES = {key: value for key, value in SANDBOX_ENV.items() if key != "PATH"}


@dataclass
class ImageRunner:
    cache_factory: Callable[[], ImageCache] = ImageCache.from_settings
    uid_first: int = 200_000
    uid_count: int = 60_000
    name: str = "image"

    @classmethod
    def from_settings(cls) -> "ImageRunner":
        return cls(uid_first=settings.RUNNER_SANDBOX_UID_FIRST, uid_count=settings.RUNNER_SANDBOX_UID_COUNT)

    def run(self, spec: RunSpec) -> RunResult:
        """Run spec's notebook in spec.container_image. Raises RunnerUnavailable or SandboxUnavailable (retry
        later) and RunnerGaveUp (the image can never run here as pinned); never a verdict for those."""
        self.check_available()
        if not spec.container_image:
            raise RunnerGaveUp("The version pins no container image; RUNNER=image runs notebooks only in the "
                               "image their version names.")
        started_at = datetime.now(UTC)
        try:
            with self.cache_factory().use(spec.container_image, progress=_progress_reporter(spec)) as image:
                inspection = inspect_image(image)
                environment = image_environment(image, inspection)
                if not inspection.supported:
                    return _unsupported(inspection, environment, started_at)
                uid = run_uid(self.uid_first, self.uid_count)
                kernel_run = run_kernel(spec, image_view(image, inspection, spec.limits), uid)
        except InvalidImageReference as exc:
            raise RunnerGaveUp(f"{exc.title}: {exc.detail}") from exc
        except ImageUnavailable as exc:
            message = f"{exc.title}: {exc.detail}" if exc.detail != exc.title else exc.detail
            if exc.retryable:
                raise RunnerUnavailable(message) from exc
            raise RunnerGaveUp(message) from exc
        return result_from_kernel_run(kernel_run, spec, started_at=started_at, environment=environment,
                                      environment_name=f"The image {image.reference}")

    def check_available(self) -> None:
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed; install the Debian package bubblewrap.")
        if os.geteuid() == 0 and shutil.which("setpriv") is None:
            raise SandboxUnavailable("setpriv (util-linux) is needed to drop root before starting the sandbox.")


def image_view(image: CachedImage, inspection: ImageInspection, limits: SandboxLimits) -> KernelView:
    """The image's root filesystem as `/`, its Python as the kernel, its Env (with our overrides) inside only."""
    return KernelView(
        root_mounts=sandbox_mounts(image.rootfs, shm_mb=limits.shm_mb, tmp_mb=limits.tmpfs_mb),
        kernel_python=inspection.python,
        identity_files=replaceable_identity_files(image),
        outer_env={"PATH": HOST_PATH},
        inner_env=sandbox_environment(image, **KERNEL_OVERRIDES),
    )


def image_environment(image: CachedImage, inspection: ImageInspection) -> dict:
    """What really ran the notebook, for the report: the image as pulled, and what was read inside it."""
    return {
        "runner": "image",
        "sandbox": "bubblewrap",
        "image": image.reference,
        "image_digest": image.digest,
        "manifest_digest": image.manifest_digest,
        "kernel_python": inspection.python,
        "python_version": inspection.python_version,
        "ipykernel_version": inspection.ipykernel_version,
        "packages": [f"{name}=={version}" for name, version in inspection.packages.items()],
        "kernel_isolation": KERNEL_ISOLATION,
        "image_download_bytes": image.download_bytes,
        "image_pulled_at": image.pulled_at,
    }


def replaceable_identity_files(image: CachedImage) -> tuple[str, ...]:
    """Our /etc/passwd, group and hostname go over the image's. bwrap cannot create a mount point inside the
    image's read-only /etc, so only files the image has (as regular files, never through its links) are
    replaced; an image without /etc gets all three on bwrap's own root."""
    etc = image.rootfs / "etc"
    if not etc.is_dir() or etc.is_symlink():
        return IDENTITY_FILES if not os.path.lexists(etc) else ()
    present = []
    for name in IDENTITY_FILES:
        try:
            if stat.S_ISREG(os.lstat(etc / name).st_mode):
                present.append(name)
        except FileNotFoundError:
            pass
    return tuple(present)


def _unsupported(inspection: ImageInspection, environment: dict, started_at: datetime) -> RunResult:
    message = inspection.problem[:1].upper() + inspection.problem[1:] + "."
    return RunResult(outcome=Outcome.UNSUPPORTED_IMAGE, message=message, executed_notebook=None, logs="",
                     started_at=started_at, finished_at=datetime.now(UTC), environment=environment)


def _progress_reporter(spec: RunSpec):
    """The pull's progress (bytes done, total) for the run page, when the caller observes the run."""
    report = getattr(spec.observer, "pull_progress", None)
    if report is None:
        return None

    def progress(done: int, total: int) -> None:
        try:
            report(done, total)
        except Exception:  # noqa: BLE001 - showing progress must never fail the pull
            pass

    return progress
