"""Short-lived, signed download URLs for the staged inputs of a run, for runners that work elsewhere (GitLab CI).

A CI job must fetch the notebook's data without any credential of ours. Each input of a run gets a URL

    {SITE_URL}/runs/<run id>/data/<target path>?expires=<unix time>&signature=<hmac>

signed with SECRET_KEY (django.core.signing, salt "nbarchive.run-data") over the run id, the path and the expiry.
It is a capability for exactly those bytes until it expires (GITLAB_DATA_URL_TTL_SECONDS) and only while the run
is running: an expired, altered or foreign URL, or one of a run that ended, is refused (PermissionDenied -> 403).

What is served is what staging verified: version files and `repository_file` references from blob storage, other
references from the staging cache (by sha256, the entry staging filled moments before). The cache is local to
the worker that staged, so the web process serving these URLs must see STAGING_CACHE_DIR (same host or a shared
volume).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.crypto import constant_time_compare

from repository import storage
from repository.errors import NotFound, PermissionDenied
from repository.models import DataReference, ExecutionRun
from repository.runners.staging import cache_dir_from_settings

SALT = "nbarchive.run-data"


@dataclass
class RunData:
    stream: object  # a binary file object; the caller closes it (FileResponse does)
    size: int
    filename: str


def run_data_url(*, run: ExecutionRun, target_path: str, expires_at: int | None = None) -> str:
    """The absolute signed URL of one input of the run, valid until `expires_at` (default: now + TTL)."""
    if expires_at is None:
        expires_at = int(time.time()) + settings.GITLAB_DATA_URL_TTL_SECONDS
    path = reverse("repository:run_data", kwargs={"run_id": run.run_id, "target_path": target_path})
    query = urlencode({"expires": expires_at, "signature": _signature(str(run.run_id), target_path, expires_at)})
    return f"{settings.SITE_URL}{path}?{query}"


def run_data_open(*, run_id, target_path: str, expires: str, signature: str) -> RunData:
    """The bytes a signed URL stands for. PermissionDenied (expired, altered, run not running), NotFound (no such
    input, or the staged copy is gone)."""
    try:
        expires_at = int(expires)
    except (TypeError, ValueError):
        raise PermissionDenied("This download link is not valid.") from None
    if not constant_time_compare(signature or "", _signature(str(run_id), target_path, expires_at)):
        raise PermissionDenied("This download link is not valid.")
    if expires_at < time.time():
        raise PermissionDenied("This download link has expired.")
    run = ExecutionRun.objects.select_related("version").filter(run_id=run_id).first()
    if run is None or run.status != ExecutionRun.Status.RUNNING:
        raise PermissionDenied("This download link has expired: its run is not running.")
    if run.runner != "gitlab":  # only a GitLab job fetches its inputs; other runners stage them themselves
        raise PermissionDenied("This download link is not valid.")
    return _open_input(run, target_path)


def _signature(run_id: str, target_path: str, expires_at: int) -> str:
    return signing.Signer(salt=SALT).signature(f"{run_id}\n{target_path}\n{expires_at}")


def _open_input(run: ExecutionRun, target_path: str) -> RunData:
    from repository.services.runs import reference_blob_key, repository_file_refusal

    filename = target_path.rsplit("/", 1)[-1]
    version_file = None
    if target_path != run.notebook_path:
        version_file = run.version.files.select_related("blob").filter(path=target_path).first()
    if version_file is not None:
        return RunData(storage.open_blob(version_file.blob.storage_key), version_file.blob.size, filename)
    reference = run.version.data_references.filter(target_path=target_path).first()
    if reference is None:
        raise NotFound("The run has no input at this path.")
    if reference.kind == DataReference.Kind.REPOSITORY_FILE:
        if repository_file_refusal(reference) is not None:  # closed since staging checked it: serve nothing
            raise PermissionDenied("The repository file of this reference may no longer be read.")
        blob_key = reference_blob_key(reference)
        if blob_key is None:
            raise NotFound("The repository file of this reference is gone.")
        return RunData(storage.open_blob(blob_key), reference.size, filename)
    entry = Path(cache_dir_from_settings()) / reference.sha256[:2] / reference.sha256
    try:
        handle = open(entry, "rb")  # noqa: SIM115 - handed to the response, which closes it
    except OSError:
        raise NotFound("The staged copy of this input is not available here.") from None
    if Path(entry).stat().st_size != reference.size:
        handle.close()
        raise NotFound("The staged copy of this input is not available here.")
    return RunData(handle, reference.size, filename)
