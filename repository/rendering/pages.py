"""`rendered_page`: the page of a notebook blob, from the cache by sha256 or rendered once by the worker, and the
headers it is served with (its own URL, embedded in an `<iframe sandbox>` by the review and landing pages)."""

import contextlib
import fcntl
import logging
import os
import re
import tempfile
import time
from pathlib import Path

from django.conf import settings

from repository import storage
from repository.rendering.html import error_page
from repository.rendering.worker import FAILURE_MESSAGE, RenderedPage, run_worker

logger = logging.getLogger(__name__)

# Bump when the rendering or the sanitiser changes: cached pages of the old version are then ignored.
RENDERER_VERSION = 1

CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'; "
                           "sandbox")
RESPONSE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private",
}

DEFAULT_TIMEOUT = 30  # seconds; settings.NOTEBOOK_RENDER_TIMEOUT overrides
DEFAULT_MEMORY = 3 * 1024**3  # bytes of address space for the worker; settings.NOTEBOOK_RENDER_MEMORY overrides
DEFAULT_RETRY_AFTER = 600  # seconds a timed-out or crashed render is remembered before it is tried again


def _setting(name: str, default):
    return getattr(settings, name, default)


def rendered_page(blob) -> RenderedPage:
    """The page for a notebook blob: from the cache, or rendered once in a time-limited worker.

    Never raises: a notebook that cannot be shown gives an error page (422 refused, 503 timed out or failed).
    One notebook is rendered by one worker at a time: many views of a notebook not yet rendered (a reload, several
    moderators, or someone asking on purpose) wait for that render instead of each starting a worker of their own.
    """
    cached = _cache_read(blob.sha256)
    if cached is not None:
        return cached
    timeout = _setting("NOTEBOOK_RENDER_TIMEOUT", DEFAULT_TIMEOUT)
    with _render_lock(blob.sha256, wait_seconds=timeout + 10) as locked:
        if not locked:
            return RenderedPage(error_page("This notebook is still being rendered; reload the page in a minute."), 503)
        cached = _cache_read(blob.sha256)  # rendered by whoever held the lock before us
        if cached is not None:
            return cached
        return _render_and_cache(blob)


def _render_and_cache(blob) -> RenderedPage:
    max_size = _setting("MAX_NOTEBOOK_SIZE", 200 * 1024**2)
    if blob.size > max_size:
        return RenderedPage(error_page(f"The notebook is larger than the {max_size} bytes that are rendered here."),
                            422)
    try:
        with storage.open_blob(blob.storage_key) as handle:
            notebook_bytes = handle.read(max_size + 1)
    except Exception:  # storage errors vary by backend; the page must still answer
        logger.exception("Could not read notebook blob %s for rendering", blob.sha256)
        return RenderedPage(error_page("The notebook file could not be read right now; try again later."), 503)
    try:
        rendered = run_worker(notebook_bytes, timeout=_setting("NOTEBOOK_RENDER_TIMEOUT", DEFAULT_TIMEOUT),
                              max_size=max_size, memory=_setting("NOTEBOOK_RENDER_MEMORY", DEFAULT_MEMORY))
    except Exception:  # e.g. the worker could not be started
        logger.exception("Could not render notebook blob %s", blob.sha256)
        return RenderedPage(error_page(FAILURE_MESSAGE), 503)
    try:
        _cache_write(blob.sha256, rendered)
    except OSError:
        logger.exception("Could not cache the rendering of notebook blob %s", blob.sha256)
    return rendered


@contextlib.contextmanager
def _render_lock(sha256: str, *, wait_seconds: float):
    """An exclusive lock on this notebook's rendering, shared by every web process of the machine (the cache is
    per machine too); yields False when it could not be had within wait_seconds."""
    path = _cache_paths(sha256)[200].with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.1)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
def cached_page(blob) -> RenderedPage | None:
    """The page of a notebook blob if it was rendered already, without ever starting the worker: for pages
    that must not wait for a rendering (the landing page's table of contents)."""
    return _cache_read(blob.sha256)


def _cache_paths(sha256: str) -> dict[int, Path]:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise ValueError("not a sha256")
    folder = Path(settings.VAR_DIR) / "rendered" / sha256[:2]
    return {status: folder / f"{sha256}.v{RENDERER_VERSION}.{status}.html" for status in (200, 422, 503)}


def _cache_read(sha256: str) -> RenderedPage | None:
    retry_after = _setting("NOTEBOOK_RENDER_RETRY_AFTER", DEFAULT_RETRY_AFTER)
    for status, path in _cache_paths(sha256).items():
        try:
            if status == 503 and time.time() - path.stat().st_mtime > retry_after:
                continue  # a timeout or crash is remembered for a while, then tried again
            return RenderedPage(path.read_text(encoding="utf-8"), status)
        except FileNotFoundError:
            continue
    return None


def _cache_write(sha256: str, rendered: RenderedPage) -> None:
    path = _cache_paths(sha256)[rendered.status]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".html")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(rendered.html)
        os.replace(temporary, path)  # atomic: a reader sees the old state or the whole new page
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
