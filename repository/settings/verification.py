"""Settings of notebook verification: runners, sandbox limits, comparison, staging of inputs, the image cache.

Part of the settings package (`repository/settings/__init__.py` imports it); environment variables only."""

import shutil

from ._env import BASE_DIR, VAR_DIR, env

# image (the pinned image, wherever skopeo and umoci are installed; else local, this server's kernel env) | gitlab
RUNNER = env.str("RUNNER", default="image" if all(shutil.which(t) for t in ("skopeo", "umoci")) else "local")
# The Python environment the local sandbox runs notebooks with (ipykernel, nbclient and common scientific
# packages); `make kernel-env` builds it. It is separate from the worker's environment on purpose.
RUNNER_KERNEL_PYTHON = env.str("RUNNER_KERNEL_PYTHON", default=str(BASE_DIR / "var" / "kernel-env" / "bin" / "python"))
# A root worker runs each notebook as a fresh uid from this range (no files on the host belong to them).
RUNNER_SANDBOX_UID_FIRST = env.int("RUNNER_SANDBOX_UID_FIRST", default=200_000)
RUNNER_SANDBOX_UID_COUNT = env.int("RUNNER_SANDBOX_UID_COUNT", default=60_000)
RUNNER_MEMORY_MB = env.int("RUNNER_MEMORY_MB", default=2048)
RUNNER_CPU_SECONDS = env.int("RUNNER_CPU_SECONDS", default=600)
RUNNER_MAX_PROCESSES = env.int("RUNNER_MAX_PROCESSES", default=64)
RUNNER_MAX_FILE_SIZE_MB = env.int("RUNNER_MAX_FILE_SIZE_MB", default=512)
RUNNER_MAX_OPEN_FILES = env.int("RUNNER_MAX_OPEN_FILES", default=256)
RUNNER_CELL_TIMEOUT_SECONDS = env.int("RUNNER_CELL_TIMEOUT_SECONDS", default=300)
RUNNER_NOTEBOOK_TIMEOUT_SECONDS = env.int("RUNNER_NOTEBOOK_TIMEOUT_SECONDS", default=1800)
# A verification worker renews its run's heartbeat every RUN_HEARTBEAT_SECONDS; a run whose heartbeat is older than
# RUN_ORPHAN_SECONDS is taken over (services/run_leases.py), at most RUN_MAX_ATTEMPTS times in all.
RUN_HEARTBEAT_SECONDS = env.float("RUN_HEARTBEAT_SECONDS", default=30.0)
RUN_ORPHAN_SECONDS = env.int("RUN_ORPHAN_SECONDS", default=180)
RUN_MAX_ATTEMPTS = env.int("RUN_MAX_ATTEMPTS", default=4)
# Published versions are re-run in their image when their last result is older than REVERIFY_INTERVAL_DAYS, oldest
# first, at most REVERIFY_PER_DAY a day (services/reverification.py); 0 turns it off.
REVERIFY_INTERVAL_DAYS = env.int("REVERIFY_INTERVAL_DAYS", default=90)
REVERIFY_PER_DAY = env.int("REVERIFY_PER_DAY", default=50)
# A re-verification that ended in error (image gone, registry down) is tried again after this many days, not at the
# next hourly look, so one version that cannot be re-run does not spend the day's budget.
REVERIFY_ERROR_RETRY_DAYS = env.int("REVERIFY_ERROR_RETRY_DAYS", default=7)
# The output cap counts every byte the kernel sends on its shell and IOPub channels, as it arrives: the outputs and
# also each message's envelope (header, parent header, metadata, signature: about 400 bytes per message). A cell
# that displays a million small values (one message each) reaches it although their text is a few MB
# (runners/kernel_collector.py).
RUNNER_MAX_OUTPUT_MB = env.int("RUNNER_MAX_OUTPUT_MB", default=50)
RUNNER_TMPFS_MB = env.int("RUNNER_TMPFS_MB", default=256)

# Comparing fresh outputs with the submitted ones; a version may override these (Version.comparison_tolerance).
COMPARE_RTOL = env.float("COMPARE_RTOL", default=1e-9)
COMPARE_ATOL = env.float("COMPARE_ATOL", default=1e-12)
COMPARE_PIXEL_TOLERANCE = env.int("COMPARE_PIXEL_TOLERANCE", default=8)
COMPARE_MAX_DIFFERING_PIXELS = env.float("COMPARE_MAX_DIFFERING_PIXELS", default=0.001)
# Images with more pixels (read from the header) are not decoded: "too large to compare", identical only if their
# bytes are. Bounds the worker's time and memory per image (two 25-megapixel PNGs decode to about 200 MB).
COMPARE_MAX_IMAGE_PIXELS = env.int("COMPARE_MAX_IMAGE_PIXELS", default=25_000_000)

# Fetching data references before a run (outside the sandbox; refuses private addresses).
STAGING_MAX_BYTES = env.int("STAGING_MAX_BYTES", default=5 * 1024**3)
STAGING_TIMEOUT_SECONDS = env.float("STAGING_TIMEOUT_SECONDS", default=60)
STAGING_TOTAL_SECONDS = env.int("STAGING_TOTAL_SECONDS", default=1800)
STAGING_MAX_REDIRECTS = env.int("STAGING_MAX_REDIRECTS", default=5)
# Fetched data is kept by checksum, so a re-run does not download it again.
STAGING_CACHE_DIR = env.str("STAGING_CACHE_DIR", default=str(VAR_DIR / "staging-cache"))
# CIDRs exempt from the private-address refusal: only for tests or an archive on the same private network.
STAGING_ALLOWED_NETWORKS = env.list("STAGING_ALLOWED_NETWORKS", default=[])
STAGING_CA_BUNDLE = env.str("STAGING_CA_BUNDLE", default="")
STAGING_DOI_RESOLVER = env.str("STAGING_DOI_RESOLVER", default="https://doi.org/")
# Container images the notebooks pin (repository/runners/images): pulled by digest with skopeo, unpacked with umoci
# into this cache, one root filesystem per digest, shared by runs and by worker processes.
IMAGE_CACHE_DIR = env.str("IMAGE_CACHE_DIR", default=str(VAR_DIR / "image-cache"))
# Least recently used images not in use are evicted to keep the cache under this size (unpacked, on disk).
IMAGE_CACHE_GB = env.float("IMAGE_CACHE_GB", default=50.0)
# Larger images are refused, both as downloaded (layers) and as unpacked; the message names this limit.
IMAGE_MAX_GB = env.float("IMAGE_MAX_GB", default=20.0)
IMAGE_PULL_TIMEOUT_SECONDS = env.float("IMAGE_PULL_TIMEOUT_SECONDS", default=1800.0)
# host:port of registries reached over plain HTTP (tests, private networks); every other one is HTTPS, verified.
IMAGE_INSECURE_REGISTRIES = env.list("IMAGE_INSECURE_REGISTRIES", default=[])
# A docker-style auth file ({"auths": {"registry": {"auth": base64(user:password)}}}) for private registries;
# given to skopeo with --authfile only, never to an environment a notebook could read.
IMAGE_REGISTRY_AUTH_FILE = env.str("IMAGE_REGISTRY_AUTH_FILE", default="")
