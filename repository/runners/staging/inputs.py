"""Staging: put a version's files and its data references where the notebook expects them, before the run.

``stage_inputs`` is the entry point; the package docstring states its contract. Version files are streamed from
our blob storage and re-verified (a mismatch means our storage is damaged). References are checked as declared
(not refused by the caller, kind, sha256, size within ``FetchPolicy.max_bytes``) and their target path before
anything is fetched or taken from the cache; then taken from the checksum cache when a usable entry is there, else
obtained by their kind (sources.py) into a verified cache entry, then linked or copied into the working folder.
Folders created for staged files are made read-only at the very end. Every failure raises ``StagingError`` naming
the file or reference; an ``OSError`` left over (our own disk) is translated here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from repository.runners.staging.cache import (
    VerifiedWriter,
    cache_entry,
    link_or_copy,
    usable_cache_entry,
    verified_write,
)
from repository.runners.staging.errors import StagingError, clip
from repository.runners.staging.paths import prepare_target
from repository.runners.staging.sources import SOURCES, blob_chunks, from_local_file
from repository.runners.staging.specs import FetchPolicy, FileSpec, ReferenceSpec


def stage_inputs(
    *, workdir: Path, files: list[FileSpec], references: list[ReferenceSpec], cache_dir: Path, policy: FetchPolicy
) -> list[dict]:
    """Place files and references under workdir at their relative paths, verify every sha256, make them read-only.

    Returns one dict per reference: {label, target_path, sha256, size, source_url, from_cache}; `source_url` is
    the final URL fetched, None when nothing was fetched (cache hit, repository file).
    Raises StagingError naming the reference on any failure; leaves no partial file at a target path.
    """
    workdir = Path(workdir).resolve(strict=True)
    cache_dir = Path(cache_dir)
    created_folders: list[Path] = []
    for spec in files:
        with _disk_errors(_file_label(spec)):
            _stage_version_file(spec, workdir=workdir, created_folders=created_folders)
    results = []
    for reference in references:
        with _disk_errors(reference.label):
            results.append(
                _stage_reference(
                    reference, workdir=workdir, cache_dir=cache_dir, policy=policy, created_folders=created_folders
                )
            )
    # Only now: a read-only folder would refuse the files still to come (for a non-root worker).
    for folder in reversed(created_folders):
        os.chmod(folder, 0o555)
    return results


# --- version files ------------------------------------------------------------------------------------------------


@contextmanager
def _disk_errors(label: str) -> Iterator[None]:
    # Network and storage errors are translated where they happen; what is left is our own disk.
    try:
        yield
    except OSError as exc:
        raise StagingError(label, f"could not be placed on disk ({clip(exc)}); tell the administrators.") from exc


def _file_label(spec: FileSpec) -> str:
    return f"file {spec.path!r} of the version"


def _stage_version_file(spec: FileSpec, *, workdir: Path, created_folders: list[Path]) -> None:
    label = _file_label(spec)
    target = prepare_target(workdir, spec.path, label, created_folders)
    with verified_write(target.parent, label, limit=None) as writer:
        for chunk in blob_chunks(spec.blob_key, label):
            writer.write(chunk)
        if writer.sha256 != spec.sha256:
            raise StagingError(
                label,
                f"the stored copy has sha256 {writer.sha256} but the version records {spec.sha256}; our storage is "
                "damaged. Nothing in the notebook can fix this: tell the archive's administrators.",
            )
        writer.commit(target)


# --- references ---------------------------------------------------------------------------------------------------


def _stage_reference(
    reference: ReferenceSpec, *, workdir: Path, cache_dir: Path, policy: FetchPolicy, created_folders: list[Path]
) -> dict:
    label = reference.label
    _check_declaration(reference, policy)
    # Checked before fetching (a bad path costs no download) and again when placing; folders are only created
    # then, so a reference that fails leaves no empty folders behind.
    prepare_target(workdir, reference.target_path, label, created_folders, create=False)
    entry = cache_entry(cache_dir, reference.sha256)
    source_url = None
    # A local stand-in is always read: a cached copy must not hide that the given file does not match.
    from_cache = reference.local_path is None and usable_cache_entry(entry, reference.size)
    if not from_cache:
        source_url = _fill_cache(reference, entry, policy)
    target = prepare_target(workdir, reference.target_path, label, created_folders)
    link_or_copy(entry, target, label)
    return {
        "label": label,
        "target_path": reference.target_path,
        "sha256": reference.sha256,
        "size": reference.size,
        "source_url": source_url,
        "from_cache": from_cache,
    }


def _check_declaration(reference: ReferenceSpec, policy: FetchPolicy) -> None:
    label = reference.label
    if reference.refused:
        raise StagingError(label, reference.refused)
    if reference.local_path is None and reference.kind not in SOURCES:
        raise StagingError(label, f"its kind {reference.kind!r} is not one staging knows; correct the reference.")
    if len(reference.sha256) != 64 or any(char not in "0123456789abcdef" for char in reference.sha256):
        raise StagingError(label, "its sha256 is not 64 lowercase hexadecimal digits; correct the reference.")
    if reference.size < 0:
        raise StagingError(label, "its declared size is negative; correct the reference.")
    if reference.size > policy.max_bytes:
        raise StagingError(
            label,
            f"it declares {reference.size} bytes, more than the limit of {policy.max_bytes} bytes for staged data; "
            "use a smaller extract or ask the administrators.",
        )


def _fill_cache(reference: ReferenceSpec, entry: Path, policy: FetchPolicy) -> str | None:
    """Obtain the bytes into a verified cache entry; return the final URL fetched (None for our own blobs)."""
    label = reference.label
    entry.parent.mkdir(parents=True, exist_ok=True)
    with verified_write(entry.parent, label, limit=reference.size) as writer:
        source = from_local_file if reference.local_path is not None else SOURCES[reference.kind]
        source_url = source(reference, writer, policy)
        _check_content(reference, writer)
        writer.commit(entry)
    return source_url


def _check_content(reference: ReferenceSpec, writer: VerifiedWriter) -> None:
    if writer.sha256 != reference.sha256:
        if reference.kind == "repository_file":
            cause = "the reference's checksum is wrong, or our storage is damaged"
        else:
            cause = "the file changed at the source or the checksum is wrong"
        sizes = f" ({writer.size} bytes, declared {reference.size})" if writer.size != reference.size else ""
        raise StagingError(
            reference.label, f"sha256 is {writer.sha256}{sizes} but the reference says {reference.sha256}; {cause}."
        )
    if writer.size != reference.size:
        raise StagingError(
            reference.label,
            f"the file has the right sha256 but is {writer.size} bytes, not the declared {reference.size}; "
            "correct the declared size.",
        )
