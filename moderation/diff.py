"""What changed between the version under review and the record's previous published version.

Three parts, as a moderator reads them: metadata fields, files (added, removed, changed by checksum) and the
notebook's cells (source changes as unified diffs). Nothing is stored in the database.

The cell diff is the one costly part, and its input is chosen by the author: difflib's matching can take time
that grows with the cube of the lines fed to it (a crafted 83 KB notebook took 16 s). So it is bounded like the
output comparison's diff (`limits.DIFF_INPUT_LINES` lines per side, from just before the first difference, out
of notebooks of at most MAX_DIFFED_NOTEBOOK_BYTES) — about a second in the worst case found — and cached by the
two notebooks' sha256, so a page view, a reload or many moderators pay it at most once per pair of notebooks.
It stays in the request rather than in a Celery task because, bounded, it is no slower than rendering a page of
the queue, and a task would need a cache shared by web and workers and a "being prepared" page to reload.
"""

import difflib
import json
import logging

from django.core.cache import cache

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
# Parsed whole in the web process to list cells; larger notebooks are not diffed (the files part still says they
# changed). Far above real notebooks' sources, which is what is diffed.
MAX_DIFFED_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_DIFF_CHARS = 200_000  # of diff text shown on the page
CELL_DIFF_CACHE_SECONDS = 30 * 24 * 3600  # the key names both notebooks' contents, so it never goes stale
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
    readable = can_read_files(reader, previous)
    return {
        "previous_number": previous.number,
        "metadata": _metadata_changes(previous, version),
        "files": _file_changes(previous, version),
        "cells": (_cell_changes(previous, version) if readable
                  else {"available": False, "diff": "", "closed": closed_files_message(previous)}),
    }


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
    """The notebook could not be read right now (storage): not remembered, tried again on the next view."""


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


def _cell_changes(previous: Version, version: Version) -> dict:
    before_blob, after_blob = _notebook_blob(previous), _notebook_blob(version)
    if before_blob is None or after_blob is None:
        return {"available": False, "diff": ""}
    key = f"moderation:cell-diff:{CELL_DIFF_FORMAT}:{before_blob.sha256}:{after_blob.sha256}"
    cached = _cache_get(key)
    if cached is not None:
        return _with_labels(cached, previous, version)
    try:
        changes = _bounded_cell_diff(_cell_sources(before_blob), _cell_sources(after_blob))
    except _Unreadable:
        logger.exception("Could not read a notebook to diff versions %s and %s", previous.pk, version.pk)
        return {"available": False, "diff": ""}
    _cache_set(key, changes)
    return _with_labels(changes, previous, version)


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
        logger.warning("The cache could not be read; diffing without it", exc_info=True)
        return None


def _cache_set(key: str, value: dict) -> None:
    try:
        cache.set(key, value, CELL_DIFF_CACHE_SECONDS)
    except Exception:  # as above: the diff is still shown, only not remembered
        logger.warning("The cache could not be written", exc_info=True)
