"""The image cache of a worker: one unpacked root filesystem per digest, pulled once, shared, evicted by LRU.

Layout under IMAGE_CACHE_DIR (all folders 0755, so that a sandbox uid can reach the root filesystems):
    images/<hex>/rootfs, image.json, last-used   an image ready to run (a folder appears whole, by rename)
    locks/<hex>.pull                               held exclusively while <hex> is pulled: one pull per digest
    locks/<hex>.use                                held shared by every run using <hex>; eviction needs it
                                                   exclusively and never waits for it
    tmp/<hex>-*/  trash/                           pulls in progress; evicted images being deleted
    tools/                                         HOME, TMPDIR and signature policy of skopeo and umoci
    pulls.jsonl                                    one line per pull and per eviction (what, when, how long)
The locks are fcntl.flock locks on files that are never deleted, so they work across worker processes (and
threads, each opening its own file). The cap (IMAGE_CACHE_GB) is a target: images in use are never evicted,
even when that leaves the cache above it.
"""

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from repository.errors import ImagePullTimeout, ImageTooLarge
from repository.runners.cleanup import remove_tree
from repository.runners.images.files import disarm_and_measure
from repository.runners.images.pull import ImageConfig, ProgressCallback, PullLimits, pull_and_unpack
from repository.runners.images.reference import ImageReference, parse_reference
from repository.runners.images.tools import ImageTools, RegistryAccess

WAIT_SECONDS = 0.2


@dataclass(frozen=True)
class CachedImage:
    reference: str           # the pinned reference it was pulled as
    digest: str              # the pinned digest (the cache key)
    manifest_digest: str     # the platform manifest unpacked (differs from digest when that is an index)
    path: Path               # images/<hex>
    config: ImageConfig
    download_bytes: int
    disk_bytes: int
    pulled_at: str
    pull_seconds: float

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def last_used(self) -> datetime:
        try:
            return datetime.fromtimestamp((self.path / "last-used").stat().st_mtime, UTC)
        except FileNotFoundError:  # evicted meanwhile by another process
            return datetime.fromtimestamp(0, UTC)


class ImageLease:
    """A run's hold on an image: while it lasts, the image is not evicted. Release it (or use it as a context
    manager) when the run ends; a process that dies releases it with its file descriptors."""

    def __init__(self, image: CachedImage, lock_file):
        self.image = image
        self._lock_file = lock_file

    def release(self) -> None:
        if self._lock_file is not None:
            _touch(self.image.path / "last-used")
            self._lock_file.close()  # closing drops the flock
            self._lock_file = None

    def __enter__(self) -> CachedImage:
        return self.image

    def __exit__(self, *exc_info) -> None:
        self.release()


class ImageCache:
    def __init__(self, root: Path, *, access: RegistryAccess, limits: PullLimits, cap_bytes: int):
        self.root = Path(root)
        self.access = access
        self.limits = limits
        self.cap_bytes = cap_bytes
        self.tools = ImageTools(access, self.root / "tools")

    @classmethod
    def from_settings(cls) -> "ImageCache":
        from django.conf import settings

        return cls(Path(settings.IMAGE_CACHE_DIR),
                   access=RegistryAccess(frozenset(r.lower() for r in settings.IMAGE_INSECURE_REGISTRIES),
                                         settings.IMAGE_REGISTRY_AUTH_FILE),
                   limits=PullLimits(max_bytes=int(settings.IMAGE_MAX_GB * 1024**3),
                                     timeout_seconds=settings.IMAGE_PULL_TIMEOUT_SECONDS),
                   cap_bytes=int(settings.IMAGE_CACHE_GB * 1024**3))

    # --- using an image ----------------------------------------------------------------------------------
    def acquire(self, reference: str | ImageReference, *, progress: ProgressCallback | None = None) -> ImageLease:
        """The image, pulled now unless the cache has it, held against eviction until the lease is released."""
        ref = parse_reference(reference) if isinstance(reference, str) else reference
        self._ensure_folders()
        while True:
            use = self._lock_file(ref, "use")
            fcntl.flock(use, fcntl.LOCK_SH)  # waits only while an eviction of this very image renames it away
            image = self._read(ref.hex)
            if image is not None:
                _touch(image.path / "last-used")
                lease = ImageLease(image, use)
                self.evict(keep_bytes=self.cap_bytes)  # ours is leased, so it stays
                return lease
            use.close()
            self._pull_once(ref, progress)

    @contextmanager
    def use(self, reference: str | ImageReference, *, progress: ProgressCallback | None = None
            ) -> Iterator[CachedImage]:
        with self.acquire(reference, progress=progress) as image:
            yield image

    def pull(self, reference: str | ImageReference, *, progress: ProgressCallback | None = None) -> CachedImage:
        """Make sure the cache has the image (manage.py images pull); holds no lease afterwards."""
        with self.use(reference, progress=progress) as image:
            return image

    def _pull_once(self, ref: ImageReference, progress: ProgressCallback | None) -> None:
        with self._lock_file(ref, "pull") as pull_lock:
            waited_until = time.monotonic() + self.limits.timeout_seconds * 2 + 60
            while True:
                try:
                    fcntl.flock(pull_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:  # another run is pulling this image: wait for it, do not pull twice
                    if time.monotonic() > waited_until:
                        raise ImagePullTimeout(
                            f"Another pull of {ref} has not finished within twice "
                            f"IMAGE_PULL_TIMEOUT_SECONDS={self.limits.timeout_seconds:g}.") from None
                    time.sleep(WAIT_SECONDS)
            if self._read(ref.hex) is not None:
                return  # the other run pulled it meanwhile
            if (self.root / "images" / ref.hex).exists():  # unreadable, so no run can be using it: pull afresh
                (self.root / "images" / ref.hex).rename(self.root / "trash" / f"{ref.hex}-{uuid.uuid4().hex[:8]}")
            for leftover in (self.root / "tmp").glob(f"{ref.hex}-*"):
                remove_tree(leftover)  # a pull that died half-way
            staging = self.root / "tmp" / f"{ref.hex}-{uuid.uuid4().hex[:8]}"
            staging.mkdir(mode=0o755)
            try:
                pulled = pull_and_unpack(ref, staging, tools=self.tools, limits=self.limits, progress=progress)
                bundle = staging / "bundle"
                disk_bytes = disarm_and_measure(bundle / "rootfs")
                if disk_bytes > self.limits.max_bytes:
                    raise ImageTooLarge(f"{ref} takes {disk_bytes / 1024**3:.2f} GB unpacked, more than "
                                        f"{self.limits.gigabytes()}.")
                record = {"reference": str(ref), "digest": ref.digest, "manifest_digest": pulled.manifest_digest,
                          "config": pulled.config.to_dict(), "download_bytes": pulled.download_bytes,
                          "disk_bytes": disk_bytes, "pulled_at": datetime.now(UTC).isoformat(),
                          "pull_seconds": pulled.seconds}
                for name in os.listdir(bundle):  # umoci's runtime config and mtree: not needed to run
                    if name != "rootfs":
                        remove_tree(bundle / name)
                (bundle / "image.json").write_text(json.dumps(record, indent=2))
                _touch(bundle / "last-used")
                bundle.rename(self.root / "images" / ref.hex)
                self._log({"event": "pull", **{k: record[k] for k in ("reference", "download_bytes", "disk_bytes",
                                                                        "pull_seconds")}})
            finally:
                remove_tree(staging)

    # --- what the cache holds ----------------------------------------------------------------------------
    def list_images(self) -> list[CachedImage]:
        images = []
        folder = self.root / "images"
        for entry in sorted(folder.iterdir()) if folder.exists() else []:
            image = self._read(entry.name)
            if image is not None:
                images.append(image)
        return images

    def in_use(self, image: CachedImage) -> bool:
        with open(self.root / "locks" / f"{image.path.name}.use", "a+") as use:
            try:
                fcntl.flock(use, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return False
            except BlockingIOError:
                return True

    def pull_log(self) -> list[dict]:
        log = self.root / "pulls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines() if line] if log.exists() else []

    # --- eviction ----------------------------------------------------------------------------------------
    def evict(self, *, keep_bytes: int) -> list[CachedImage]:
        """Evict least recently used images not in use until the cache holds at most keep_bytes."""
        images = sorted(self.list_images(), key=lambda image: image.last_used)
        total = sum(image.disk_bytes for image in images)
        evicted = []
        for image in images:
            if total <= keep_bytes:
                break
            if self._remove_unless_in_use(image, reason="cap"):
                total -= image.disk_bytes
                evicted.append(image)
        return evicted

    def prune(self, *, everything: bool = False) -> list[CachedImage]:
        """Bring the cache under its cap (or empty it of every image not in use), and clear leftovers."""
        evicted = self.evict(keep_bytes=0 if everything else self.cap_bytes)
        for leftover in (self.root / "trash").iterdir() if (self.root / "trash").exists() else []:
            remove_tree(leftover)
        return evicted

    def _remove_unless_in_use(self, image: CachedImage, *, reason: str) -> bool:
        hexdigest = image.path.name
        with open(self.root / "locks" / f"{hexdigest}.use", "a+") as use:
            try:
                fcntl.flock(use, fcntl.LOCK_EX | fcntl.LOCK_NB)  # never wait: a run holds it for as long as it runs
            except BlockingIOError:
                return False
            if not image.path.exists():
                return False
            trash = self.root / "trash" / f"{hexdigest}-{uuid.uuid4().hex[:8]}"
            image.path.rename(trash)  # from here on no run can find it; deleting can take its time
        remove_tree(trash)
        self._log({"event": "evict", "reference": image.reference, "disk_bytes": image.disk_bytes, "reason": reason})
        return True

    # --- pieces ------------------------------------------------------------------------------------------
    def _ensure_folders(self) -> None:
        for name in ("images", "locks", "tmp", "trash", "tools"):
            (self.root / name).mkdir(parents=True, exist_ok=True, mode=0o755)
        self.root.chmod(self.root.stat().st_mode | 0o755)
        (self.root / "images").chmod(0o755)

    def _lock_file(self, ref: ImageReference, kind: str):
        return open(self.root / "locks" / f"{ref.hex}.{kind}", "a+")

    def _read(self, hexdigest: str) -> CachedImage | None:
        path = self.root / "images" / hexdigest
        try:
            record = json.loads((path / "image.json").read_text())
        except (OSError, ValueError):
            return None
        return CachedImage(reference=record["reference"], digest=record["digest"],
                           manifest_digest=record["manifest_digest"], path=path,
                           config=ImageConfig.from_dict(record["config"]), download_bytes=record["download_bytes"],
                           disk_bytes=record["disk_bytes"], pulled_at=record["pulled_at"],
                           pull_seconds=record["pull_seconds"])

    def _log(self, entry: dict) -> None:
        line = json.dumps({"at": datetime.now(UTC).isoformat(), **entry}) + "\n"
        with open(self.root / "pulls.jsonl", "a") as log:  # O_APPEND: whole lines even from several processes
            log.write(line)


def _touch(path: Path) -> None:
    try:
        path.touch()
    except FileNotFoundError:
        pass
