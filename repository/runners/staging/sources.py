"""Where a reference's bytes come from: one function per reference kind, and our own blob storage.

Each function in ``SOURCES`` writes the bytes of one reference into a ``VerifiedWriter`` and returns the final
URL fetched (None when nothing was fetched); checking them is the caller's job. ``url`` is a GET;
``archive_query`` POSTs the JSON ``query`` to the https endpoint and keeps the response body; ``doi`` resolves
through ``FetchPolicy.doi_resolver`` and downloads what the DOI finally points to, refusing an HTML answer (a
landing page); ``repository_file`` copies our own blob, no network. Network kinds go through https.py.
``from_local_file`` reads the local file the verify_notebook command gives for a reference (not a kind).
``blob_chunks`` reads a blob of our storage in chunks. Every failure of a reference raises ``StagingError`` (the
author's to fix); a failure of our own storage raises ``StagingStorageUnavailable`` instead, which is the
operator's: the run is retried and never gets a verdict about the notebook.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from urllib.parse import quote

from repository.errors import StorageUnavailable
from repository.integrations.s3 import STORAGE_ERRORS
from repository.runners.staging.cache import CHUNK_SIZE, VerifiedWriter
from repository.runners.staging.errors import StagingError, StagingStorageUnavailable, clip
from repository.runners.staging.https import fetch
from repository.runners.staging.specs import FetchPolicy, ReferenceSpec
from repository.storage import open_blob

# Everything our storage layer raises when it cannot give the bytes back.
_UNREADABLE = (*STORAGE_ERRORS, StorageUnavailable)


def blob_chunks(blob_key: str, label: str) -> Iterator[bytes]:
    # Only reading is guarded here: an error writing the chunks is the caller's disk, not our storage.
    try:
        blob = open_blob(blob_key)
    except _UNREADABLE as exc:
        raise _storage_error(label, exc) from exc
    with blob:
        while True:
            try:
                chunk = blob.read(CHUNK_SIZE)
            except _UNREADABLE as exc:
                raise _storage_error(label, exc) from exc
            if not chunk:
                return
            yield chunk


def _storage_error(label: str, exc: BaseException) -> StagingStorageUnavailable:
    return StagingStorageUnavailable(f"{label}: could not be read from our storage ({clip(exc)}).")


def _from_repository_file(reference: ReferenceSpec, writer: VerifiedWriter, policy: FetchPolicy) -> None:
    if not reference.blob_key:
        raise StagingError(reference.label, "the repository file it names has no stored blob; correct the reference.")
    for chunk in blob_chunks(reference.blob_key, reference.label):
        writer.write(chunk)


def _from_url(reference: ReferenceSpec, writer: VerifiedWriter, policy: FetchPolicy) -> str:
    return fetch(
        reference.identifier.strip(), writer, policy, label=reference.label, declared_size=reference.size, accept="*/*"
    )


def _from_archive_query(reference: ReferenceSpec, writer: VerifiedWriter, policy: FetchPolicy) -> str:
    if reference.query is None:
        raise StagingError(reference.label, "it has no query document to send; correct the reference.")
    # Compact and key-sorted: the same query is the same request, whoever stored it.
    body = json.dumps(reference.query, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return fetch(
        reference.identifier.strip(),
        writer,
        policy,
        label=reference.label,
        declared_size=reference.size,
        accept="application/json",
        body=body,
    )


def _from_doi(reference: ReferenceSpec, writer: VerifiedWriter, policy: FetchPolicy) -> str:
    doi = _bare_doi(reference.identifier)
    if not doi.startswith("10.") or "/" not in doi:
        raise StagingError(reference.label, f"{clip(reference.identifier)!r} is not a DOI (10.<prefix>/<suffix>).")
    url = policy.doi_resolver + quote(doi, safe="/")
    # "*/*" on purpose: doi.org answers metadata instead of redirecting when asked for citation formats.
    return fetch(
        url,
        writer,
        policy,
        label=reference.label,
        declared_size=reference.size,
        accept="*/*",
        refuse_landing_page=True,
    )


def _bare_doi(identifier: str) -> str:
    value = identifier.strip()
    for prefix in ("doi:", "https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "http://dx.doi.org/"):
        if value.lower().startswith(prefix):
            return value[len(prefix) :]
    return value


def from_local_file(reference: ReferenceSpec, writer: VerifiedWriter, policy: FetchPolicy) -> None:
    """The verify_notebook command's stand-in for a source: the file given with --data."""
    try:
        with open(reference.local_path, "rb") as handle:
            while chunk := handle.read(CHUNK_SIZE):
                writer.write(chunk)
    except OSError as exc:
        raise StagingError(reference.label, f"could not be read from {reference.local_path} ({clip(exc)}).") from exc


SOURCES: dict[str, Callable[[ReferenceSpec, VerifiedWriter, FetchPolicy], str | None]] = {
    "url": _from_url,
    "doi": _from_doi,
    "archive_query": _from_archive_query,
    "repository_file": _from_repository_file,
}
