"""Container images for the `image` runner: pinned by digest, pulled without a daemon, unpacked, inspected.

What is where:
- reference.py   `parse_reference("registry/name@sha256:<hex>") -> ImageReference`; tags and implicit registries
                 are refused (InvalidImageReference).
- tools.py       the only code that runs skopeo and umoci (`ImageTools`, `RegistryAccess`): TLS per registry
                 (IMAGE_INSECURE_REGISTRIES), credentials only through `--authfile`, failures translated into
                 the ImageUnavailable errors of repository/errors.py.
- pull.py        `pull_and_unpack`: verifies the manifest's sha256 against the pin itself, refuses what exceeds
                 IMAGE_MAX_GB or IMAGE_PULL_TIMEOUT_SECONDS, reports progress (bytes done, total), hashes every
                 blob, unpacks; `ImageConfig` is the image's Env/PATH/WorkingDir/User.
- cache.py       `ImageCache`: one unpacked rootfs per digest under IMAGE_CACHE_DIR, one pull per digest across
                 processes (flock), leases that keep an image in use from eviction, LRU eviction to IMAGE_CACHE_GB,
                 a pull log.
- files.py       what the cache does to an unpacked rootfs on the host: setuid/setgid bits, file capabilities and
                 device nodes removed (the cache is searchable by every uid), size measured, trees removed.
- inspection.py  `inspect_image`: the image's Python with ipykernel (its PATH, then /opt/conda/bin), its version
                 and packages, read by running it under bubblewrap without network; `sandbox_mounts` and
                 `run_in_image` for running anything inside an unpacked image.

A runner does:
    cache = ImageCache.from_settings()
    with cache.use(spec.container_image, progress=on_bytes) as image:     # ImageUnavailable: the operator's
        inspection = inspect_image(image)                                 # problem, retried; never a verdict
        if not inspection.supported: ...verdict unsupported_image, inspection.problem
        bwrap ... *sandbox_mounts(image.rootfs) ... --setenv from sandbox_environment(image) ... inspection.python
"""

from repository.runners.images.cache import CachedImage, ImageCache, ImageLease
from repository.runners.images.inspection import (
    ImageInspection,
    inspect_image,
    run_in_image,
    sandbox_environment,
    sandbox_mounts,
)
from repository.runners.images.pull import ImageConfig, PullLimits
from repository.runners.images.reference import ImageReference, parse_reference
from repository.runners.images.tools import RegistryAccess, missing_tools

__all__ = ["CachedImage", "ImageCache", "ImageConfig", "ImageInspection", "ImageLease", "ImageReference",
           "PullLimits", "RegistryAccess", "inspect_image", "missing_tools", "parse_reference", "run_in_image",
           "sandbox_environment", "sandbox_mounts"]
