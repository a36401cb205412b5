"""What changed between the version under review and the record's previous published version.

Three parts, as a moderator reads them: metadata fields, files (added, removed, changed by checksum) and the
notebook's cells (source changes as unified diffs). Nothing is stored in the database.

The cell diff is the one costly part, and its input is chosen by the author: difflib's matching can take time
that grows with the cube of the lines fed to it (a crafted 83 KB notebook took 16 s). So it is bounded like the
output comparison's diff (`limits.DIFF_INPUT_LINES` lines per side, from just before the first difference, out
of notebooks of at most MAX_DIFFED_NOTEBOOK_BYTES) — about a second in the worst case found — cached by the two
notebooks' sha256, and computed off the request path: `cell_diff_prepare` runs in a Celery task
(moderation/tasks.py), queued when a version is submitted or resubmitted and again when a page finds the cache
empty. A page never diffs: until the worker has filled the cache it says the diff is being prepared. The cache
is shared by web and worker processes (Redis in production, a directory under VAR_DIR on the embedded default).
"""

import difflib
import json
import logging

from django.core.cache import cache
from django.db import transaction

from repository import storage
from repository.access.policy import can_read_files
from repository.access.serving import closed_files_message
from repository.models import Version
from repository.runners.compare import limits
from repository.selectors import version_access
from repository.services.file_access import access_in_words

logger = logging.getLogger(__name__)

METADATA_FIELDS = ("title", "description", "resource_type", "version_label", "license", "keywords",
                   "container_image", "notebook_path")
# Parsed whole (in the worker) to list cells; larger notebooks are not diffed (the files part still says they
# changed). Far above real notebooks' sources, which is what is diffed.
MAX_DIFFED_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_DIFF_CHARS = 200_000  # of diff text shown on the page
CELL_DIFF_CACHE_SECONDS = 30 * 24 * 3600  # the key names both notebooks' contents, so it never goes stale
CELL_DIFF_QUEUED_SECONDS = 300  # a queued diff not done by then (its worker lost) is queued again by the next view
UNREADABLE_RETRY_SECONDS = 300  # storage failing: the page says so, and a view after this tries again
CELL_DIFF_FORMAT = 1  # bump when the diff's output changes: cached diffs of the old format are then ignored


def previous_published(version: Version) -> Version | None:
    return (Version.objects.filter(record=version.record, state=Version.State.PUBLISHED, number__lt=version.number)
            .order_by("-number").first())


def version_diff(version: Version, *, reader) -> dict | None:
    """None when there is no earlier published version to compare with. The cells' diff quotes the earlier
    notebook, so `reader` gets it only when they may read that version's files (repository.access.policy): a
    moderator of the community the new version was sent to is not one of an earlier restricted version's."""
    previous = previous_published(version)
    if previous is None:
        return None
    return {
        "previous_number": previous.number,
        "metadata": _metadata_changes(previous, version),
        "files": _file_changes(previous, version),
        "cells": _cells_for(reader, previous, version),
    }


def cell_changes(version: Version, *, reader) -> dict | None:
    """The cells part of `version_diff` alone (the page's poll while it is being prepared), on the same terms."""
    previous = previous_published(version)
    return None if previous is None else _cells_for(reader, previous, version)


def _cells_for(reader, previous: Version, version: Version) -> dict:
    if not can_read_files(reader, previous):
        return {"available": False, "diff": "", "closed": closed_files_message(previous)}
    return _cell_changes(previous, version)


def _metadata_values(version: Version) -> dict:
    values = {field: getattr(version, field) for field in METADATA_FIELDS}
    values["creators"] = [c.name + (f" ({c.orcid})" if c.orcid else "") for c in version.creators.all()]
    values["related_identifiers"] = [f"{r.relation} {r.identifier}" for r in version.related_identifiers.all()]
    values["data_references"] = [f"{d.kind} {d.identifier} -> {d.target_path} sha256:{d.sha256[:12]}"
                                 for d in version.data_references.all()]
    values["access"] = access_in_words(version_access(version))  # files closed in a new version are worth a look
    return values


def _metadata_changes(previous: Version, version: Version) -> list[dict]:
    before, after = _metadata_values(previous), _metadata_values(version)
    return [{"field": field, "before": before[field], "after": after[field]}
            for field in before if before[field] != after[field]]


def _file_changes(previous: Version, version: Version) -> list[dict]:
    before = {f.path: f.blob for f in previous.files.select_related("blob")}
    after = {f.path: f.blob for f in version.files.select_related("blob")}
    changes = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old is None:
            changes.append({"path": path, "change": "added", "size": new.size})
        elif new is None:
            changes.append({"path": path, "change": "removed", "size": old.size})
        elif old.sha256 != new.sha256:
            changes.append({"path": path, "change": "changed", "size": new.size, "previous_size": old.size})
    return changes


def _notebook_blob(version: Version):
    version_file = version.files.select_related("blob").filter(path=version.notebook_path).first()
    return version_file.blob if version_file is not None else None


class _Unreadable(Exception):
    """The notebook could not be read right now (storage): remembered only briefly, then tried again."""


def _cell_sources(blob) -> list[str] | None:
    """The cells' sources, or None when the notebook is too large or not a notebook."""
    if blob.size > MAX_DIFFED_NOTEBOOK_BYTES:
        return None
    try:
        with storage.open_blob(blob.storage_key) as handle:
            document = json.load(handle)
    except OSError as exc:
        raise _Unreadable from exc
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("cells"), list):
        return None
    return ["".join(map(str, cell.get("source", ""))) if isinstance(cell.get("source"), list)
            else str(cell.get("source", "")) for cell in document["cells"] if isinstance(cell, dict)]


def _cell_diff_key(previous: Version, version: Version) -> str | None:
    """The cache key of the two versions' cell diff: their notebooks' contents; None when one has no notebook."""
    before_blob, after_blob = _notebook_blob(previous), _notebook_blob(version)
    if before_blob is None or after_blob is None:
        return None
    return f"moderation:cell-diff:{CELL_DIFF_FORMAT}:{before_blob.sha256}:{after_blob.sha256}"


def _cell_changes(previous: Version, version: Version) -> dict:
    """The cached cell diff, or {"pending": True} after queueing its computation: never computed here."""
    key = _cell_diff_key(previous, version)
    if key is None:
        return {"available": False, "diff": ""}
    cached = _cache_get(key)
    if cached is not None:
        return _with_labels(cached, previous, version)
    _queue_once(key, version.pk)
    return {"pending": True, "available": False, "diff": ""}


def cell_diff_queue(version: Version) -> None:
    """After the caller's transaction commits, have a worker diff the version's notebook against the previous
    published one (on submission, so that the diff is usually ready when a moderator opens the request)."""
    version_pk = version.pk

    def queue() -> None:
        previous = previous_published(Version.objects.get(pk=version_pk))
        key = previous and _cell_diff_key(previous, Version.objects.get(pk=version_pk))
        if key and _cache_get(key) is None:
            _queue_once(key, version_pk)

    transaction.on_commit(queue)


def _queue_once(key: str, version_pk: int) -> None:
    # Every view of a request whose diff is not ready lands here; one task per pair of notebooks is enough.
    # The marker lapses, so a task lost with its worker is queued again by a later view.
    if not _cache_add(f"{key}:queued", CELL_DIFF_QUEUED_SECONDS):
        return
    from moderation.tasks import cell_diff_prepare_task

    cell_diff_prepare_task.delay(version_pk)


def cell_diff_prepare(*, version_pk: int) -> str:
    """Compute the cell diff of `version_pk` against the previous published version into the shared cache (a
    Celery task's work). Returns what happened: "prepared", "cached", "unreadable" (storage failed; remembered
    for UNREADABLE_RETRY_SECONDS) or "nothing to compare"."""
    version = Version.objects.filter(pk=version_pk).first()
    previous = version and previous_published(version)
    key = previous and _cell_diff_key(previous, version)
    if not key:
        return "nothing to compare"
    if _cache_get(key) is not None:
        return "cached"
    try:
        changes = _bounded_cell_diff(_cell_sources(_notebook_blob(previous)), _cell_sources(_notebook_blob(version)))
        outcome, seconds = "prepared", CELL_DIFF_CACHE_SECONDS
    except _Unreadable:
        logger.exception("Could not read a notebook to diff versions %s and %s", previous.pk, version.pk)
        # Said on the page for a while, then a later view queues the diff again.
        changes, outcome, seconds = {"available": False, "diff": ""}, "unreadable", UNREADABLE_RETRY_SECONDS
    _cache_set(key, changes, seconds)
    _cache_delete(f"{key}:queued")  # after the result is there, so no view in between queues it again
    return outcome


def _bounded_cell_diff(before: list[str] | None, after: list[str] | None) -> dict:
    """The unified diff of the cells' sources, of at most DIFF_INPUT_LINES lines per side (see the docstring)."""
    if before is None or after is None:
        return {"available": False, "diff": ""}
    before_lines = "\n".join(f"# --- cell {i}\n{source}" for i, source in enumerate(before)).splitlines()
    after_lines = "\n".join(f"# --- cell {i}\n{source}" for i, source in enumerate(after)).splitlines()
    first_difference = next((n for n, (b, a) in enumerate(zip(before_lines, after_lines, strict=False)) if b != a),
                            min(len(before_lines), len(after_lines)))
    start = max(0, first_difference - 3)
    end = start + limits.DIFF_INPUT_LINES
    diff = "\n".join(difflib.unified_diff(before_lines[start:end], after_lines[start:end], lineterm="",
                                          fromfile="{before}", tofile="{after}"))
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n… [cut: {len(diff):,} characters in all]"
    if max(len(before_lines), len(after_lines)) > end:
        diff += (f"\n… [only lines {start + 1:,} to {end:,} of the cells' sources were compared; "
                 "download both notebooks to compare the rest]")
    return {"available": True, "cells_before": len(before), "cells_after": len(after), "diff": diff}


def _with_labels(changes: dict, previous: Version, version: Version) -> dict:
    # The cached diff is shared by every pair of versions with these notebooks; the labels are this pair's.
    diff = changes["diff"].replace("--- {before}", f"--- v{previous.number}", 1)
    return {**changes, "diff": diff.replace("+++ {after}", f"+++ v{version.number}", 1)}


def _cache_get(key: str):
    try:
        return cache.get(key)
    except Exception:  # a cache server that is down must not take the review page with it
        logger.warning("The cache could not be read", exc_info=True)
        return None


def _cache_set(key: str, value: dict, seconds: int) -> None:
    try:
        cache.set(key, value, seconds)
    except Exception:  # as above
        logger.warning("The cache could not be written", exc_info=True)


def _cache_add(key: str, seconds: int) -> bool:
    """True when the marker was not there (and now is); also True when the cache is down, so work is not lost."""
    try:
        return cache.add(key, 1, seconds)
    except Exception:
        logger.warning("The cache could not be written", exc_info=True)
        return True


def _cache_delete(key: str) -> None:
    try:
        cache.delete(key)
    except Exception:
        logger.warning("The cache could not be written", exc_info=True)
