"""python manage.py images list | pull REF | prune [--all]: the worker's cache of container images.

`list` shows each cached image (digest, size on disk, last used, in use by a run); `pull REF` fetches and unpacks an
image pinned by digest ahead of the runs that need it, and says which Python with ipykernel it found; `prune` evicts
least recently used images until the cache is under IMAGE_CACHE_GB, `--all` every image no run is using. The cache
is IMAGE_CACHE_DIR of this machine: run it on each worker.
"""

import sys

from django.core.management.base import BaseCommand, CommandError

from repository.errors import ImageUnavailable, InvalidImageReference
from repository.runners.images import ImageCache, inspect_image


class Command(BaseCommand):
    help = "List, pre-pull and prune this worker's cache of container images."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="Cached images: digest, size, last used.")
        pull = actions.add_parser("pull", help="Pull and unpack an image pinned by digest.")
        pull.add_argument("reference", help="registry/name@sha256:<64 hex>")
        prune = actions.add_parser("prune", help="Evict least recently used images down to IMAGE_CACHE_GB.")
        prune.add_argument("--all", action="store_true", dest="everything", help="Evict every image not in use.")

    def handle(self, *args, action, **options):
        cache = ImageCache.from_settings()
        if action == "list":
            self._list(cache)
        elif action == "pull":
            self._pull(cache, options["reference"])
        else:
            evicted = cache.prune(everything=options["everything"])
            freed = sum(image.disk_bytes for image in evicted)
            for image in evicted:
                self.stdout.write(f"evicted {image.reference}")
            self.stdout.write(f"{len(evicted)} image(s) evicted, {_size(freed)} freed; "
                              f"{len(cache.list_images())} left.")

    def _list(self, cache: ImageCache) -> None:
        images = cache.list_images()
        for image in images:
            used = "in use" if cache.in_use(image) else ""
            self.stdout.write(f"{image.digest}  {_size(image.disk_bytes):>9}  "
                              f"{image.last_used:%Y-%m-%d %H:%M}  {image.reference}  {used}".rstrip())
        total = sum(image.disk_bytes for image in images)
        self.stdout.write(f"{len(images)} image(s), {_size(total)} of {_size(cache.cap_bytes)} (IMAGE_CACHE_GB).")

    def _pull(self, cache: ImageCache, reference: str) -> None:
        shown = {"percent": -10}

        def progress(done: int, total: int) -> None:
            percent = int(done * 100 / total) if total else 100
            if percent >= shown["percent"] + 10 or done == total:
                shown["percent"] = percent
                self.stderr.write(f"  {_size(done)} of {_size(total)} ({percent}%)")
                sys.stderr.flush()

        try:
            with cache.use(reference, progress=progress) as image:
                inspection = inspect_image(image)
        except (InvalidImageReference, ImageUnavailable) as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        self.stdout.write(f"{image.reference}: {_size(image.disk_bytes)} unpacked at {image.rootfs}")
        if inspection.supported:
            self.stdout.write(f"kernel: {inspection.python} (Python {inspection.python_version}, ipykernel "
                              f"{inspection.ipykernel_version}, {len(inspection.packages)} packages)")
        else:
            self.stdout.write(inspection.problem)


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} GB"
