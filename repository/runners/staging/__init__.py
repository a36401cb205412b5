"""Staging: put a version's files and its data references where the notebook expects them, before the run.

Contract (`stage_inputs`):
- Every file and reference lands under `workdir` at its relative path; parent folders are created. A path that is
  absolute, contains `..`, or would leave `workdir` (also through a symlink already in `workdir`) is refused.
- Every staged file has the sha256 its spec names, or staging fails; nothing is ever left at a target path that
  did not verify. Staged files end 0o444 and the folders created for them 0o555; `workdir` itself stays writable
  so the caller can add a scratch folder. (To delete a staged tree as a non-root user, chmod the folders u+w.)
- Version files are streamed from our blob storage and re-verified: a mismatch means our storage is damaged.
- References are verified copies out of a cache keyed by sha256 (`cache_dir/<sha[:2]>/<sha>`). A miss fetches
  into a temporary file beside the entry and renames it into place only after the checksum matched, so
  concurrent runs see either no entry or a whole, verified one. The entry is hard-linked into `workdir`
  (copied when the link is impossible, e.g. across filesystems).
- Network fetches happen outside the sandbox, so they are server-side request forgery waiting to happen: https
  only; every host name is resolved here and refused when any of its addresses is not public (loopback, private,
  link-local, cloud metadata, shared, reserved, IPv4 embedded in IPv6 ...) unless it lies in
  `FetchPolicy.allowed_networks`; the connection goes to the address that was checked (no second DNS lookup a
  rebinding attacker could answer differently), with the real host name for SNI, certificate checking and the
  Host header. Redirects are followed by hand and every hop is checked again. Size (the declared size is a hard
  cap), per-read timeout and total time are enforced.
- Kinds: `url` is a GET; `archive_query` POSTs the JSON `query` to the https endpoint and keeps the response body;
  `doi` resolves through `FetchPolicy.doi_resolver` and downloads what the DOI finally points to, refusing an
  HTML answer (a landing page: see `https._refuse_landing_page`); `repository_file` copies our own blob, no network.
- A reference the caller marks `refused` (a repository file whose version was withdrawn since it was accepted)
  fails with the caller's message, even when its bytes are in the cache.
- A reference with a `local_path` (the verify_notebook command's --data file standing in for its source) is read
  from that file, never from the cache, and checked like any other.
- Bytes are saved exactly as sent (`Accept-Encoding: identity`, no content decoding), as `curl -O` would, so the
  checksum a submitter computed on a download matches.

Every failure of an input raises `StagingError`, whose one-line message names the reference, says what is wrong and
what to do; our own storage failing raises `StagingStorageUnavailable` (a StorageUnavailable: retried, no verdict).

Modules
-------
inputs.py (``stage_inputs``: version files, then references) over paths.py (target paths under the working
folder), cache.py (the checksum cache and verified writes), sources.py (one function per reference kind; our
blob storage) and https.py (the safe HTTPS fetcher, the only module importing urllib3), which checks addresses
with addresses.py. specs.py holds what the caller passes in (``FileSpec``, ``ReferenceSpec``, ``FetchPolicy``),
errors.py the ``StagingError``.
"""

from repository.runners.staging.cache import cache_dir_from_settings
from repository.runners.staging.errors import StagingError, StagingStorageUnavailable
from repository.runners.staging.inputs import stage_inputs
from repository.runners.staging.specs import FetchPolicy, FileSpec, ReferenceSpec, policy_from_settings

__all__ = [
    "FetchPolicy",
    "FileSpec",
    "ReferenceSpec",
    "StagingError",
    "StagingStorageUnavailable",
    "cache_dir_from_settings",
    "policy_from_settings",
    "stage_inputs",
]
