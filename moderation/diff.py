"""What changed between the version under review and the record's previous published version.

Three parts, as a moderator reads them: metadata fields, files (added, removed, changed by checksum) and the
notebook's cells (source changes as unified diffs). Pure reads; nothing is stored.
"""

import difflib
import json

from repository import storage
from repository.models import Version

METADATA_FIELDS = ("title", "description", "resource_type", "version_label", "license", "keywords",
                   "container_image", "notebook_path")
MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024


def previous_published(version: Version) -> Version | None:
    return (Version.objects.filter(record=version.record, state=Version.State.PUBLISHED, number__lt=version.number)
            .order_by("-number").first())


def version_diff(version: Version) -> dict | None:
    """None when there is no earlier published version to compare with."""
    previous = previous_published(version)
    if previous is None:
        return None
    return {
        "previous_number": previous.number,
        "metadata": _metadata_changes(previous, version),
        "files": _file_changes(previous, version),
        "cells": _cell_changes(previous, version),
    }


def _metadata_values(version: Version) -> dict:
    values = {field: getattr(version, field) for field in METADATA_FIELDS}
    values["creators"] = [c.name + (f" ({c.orcid})" if c.orcid else "") for c in version.creators.all()]
    values["related_identifiers"] = [f"{r.relation} {r.identifier}" for r in version.related_identifiers.all()]
    values["data_references"] = [f"{d.kind} {d.identifier} -> {d.target_path} sha256:{d.sha256[:12]}"
                                 for d in version.data_references.all()]
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


def _cell_sources(version: Version) -> list[str] | None:
    version_file = version.files.select_related("blob").filter(path=version.notebook_path).first()
    if version_file is None or version_file.blob.size > MAX_NOTEBOOK_BYTES:
        return None
    try:
        with storage.open_blob(version_file.blob.storage_key) as handle:
            document = json.load(handle)
        return ["".join(cell.get("source", "")) if isinstance(cell.get("source"), list) else str(cell.get("source", ""))
                for cell in document.get("cells", []) if isinstance(cell, dict)]
    except (OSError, ValueError, AttributeError):
        return None


def _cell_changes(previous: Version, version: Version) -> dict:
    before, after = _cell_sources(previous), _cell_sources(version)
    if before is None or after is None:
        return {"available": False, "diff": ""}
    before_text = "\n".join(f"# --- cell {i}\n{source}" for i, source in enumerate(before)).splitlines()
    after_text = "\n".join(f"# --- cell {i}\n{source}" for i, source in enumerate(after)).splitlines()
    diff = "\n".join(difflib.unified_diff(before_text, after_text, fromfile=f"v{previous.number}",
                                         tofile=f"v{version.number}", lineterm=""))
    return {"available": True, "cells_before": len(before), "cells_after": len(after), "diff": diff[:200_000]}
