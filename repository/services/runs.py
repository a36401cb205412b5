"""Verification runs of a version: request one, execute it (the Celery task's body), record the outcome.

A run is requested in the transaction that needs it and queued after commit. Executing is idempotent: a task
delivered twice (acks_late after a worker crash) finds the run no longer queued and does nothing. Failures
of our own infrastructure (sandbox missing, storage down) raise InfrastructureError so that the task retries;
everything the notebook does wrong ends as a verdict.

Runners that work elsewhere (RUNNER=gitlab) get the run's inputs as signed, short-lived URLs
(services/run_data.py) and an observer through which they record where the run lives (pipeline and job URLs)
and learn that it was cancelled. `run_cancel` cancels a queued or running run; a GitLab pipeline is cancelled
after commit (run_cancel_remote_task), and the polling runner notices the cancellation as well.
"""

import io
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from repository import storage
from repository.access.policy import can_read_files, effective_access, files_are_open
from repository.errors import Conflict, NbarchiveError, PermissionDenied, StorageUnavailable
from repository.models import Blob, DataReference, ExecutionRun, FileAccess, Verdict, Version
from repository.permissions import can_cancel_run
from repository.runners.base import InputFile, RunCancelled, RunnerGaveUp, RunnerUnavailable, get_runner
from repository.runners.cleanup import remove_tree
from repository.runners.compare import Tolerance
from repository.runners.sandbox import SandboxUnavailable
from repository.runners.staging import (
    FileSpec,
    ReferenceSpec,
    StagingError,
    cache_dir_from_settings,
    policy_from_settings,
    stage_inputs,
)
from repository.search import search_verdict_refresh
from repository.services.audit import audit_event_append
from repository.services.blobs import blob_get_or_create, blob_promote
from repository.services.reverification import reverification_recorded
from repository.services.run_leases import run_claim, run_heartbeat
from repository.services.verification import default_tolerance, limits_from_settings, notebook_verify

LOG_LIMIT = 200_000


class InfrastructureError(Exception):
    """Our side failed; the run may be retried and says nothing about the notebook."""


def run_request(*, version: Version, requested_by, supersede: bool = False,
                purpose: str = ExecutionRun.Purpose.SUBMISSION) -> ExecutionRun:
    """Queue a verification run of the version's notebook.

    A re-run is refused while another run is active. A (re)submission supersedes runs still waiting in the
    queue instead: they would verify content that has since changed.
    """
    from repository.tasks import run_verification_task

    with transaction.atomic():
        version = Version.objects.select_for_update().get(pk=version.pk)
        if not version.notebook_path:
            raise Conflict("The version has no notebook to run; upload a .ipynb file first.")
        active = version.runs.filter(status__in=[ExecutionRun.Status.QUEUED, ExecutionRun.Status.RUNNING])
        if supersede:
            active.filter(status=ExecutionRun.Status.QUEUED).update(
                status=ExecutionRun.Status.ERROR, finished_at=timezone.now(),
                message="Superseded by a newer submission before it started.")
        elif active.exists():
            raise Conflict("A verification run of this version is already queued or running.")
        run = ExecutionRun.objects.create(
            version=version, requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
            runner=settings.RUNNER, container_image=version.container_image, notebook_path=version.notebook_path,
            purpose=purpose,
        )
        audit_event_append(actor=requested_by, action="run.request", version=version, data={"run": str(run.run_id)})
        transaction.on_commit(lambda: run_verification_task.apply_async(args=[run.pk], queue="verification"))
    return run


def run_execute(*, run_pk: int) -> ExecutionRun | None:
    """Execute a queued run (or take over one whose worker died) and record its verdict. Returns None when there
    was nothing to do: the run has ended, or a live worker holds it."""
    run = run_claim(run_pk=run_pk)
    if run is None:
        return None
    with run_heartbeat(run):
        return _execute_claimed(run)


def _execute_claimed(run: ExecutionRun) -> ExecutionRun:
    run_root = Path(tempfile.mkdtemp(prefix="nbarchive-stage-"))
    try:
        run_root.chmod(0o755)  # the sandbox user must be able to reach the working directory inside it
        workdir = run_root / "work"
        workdir.mkdir()
        try:
            staged = _stage(run, workdir)
        except StagingError as exc:
            return _finish(run, verdict=Verdict.EXECUTION_FAILED, message=str(exc))
        verification = notebook_verify(
            workdir=workdir, notebook_path=run.notebook_path, runner=get_runner(run.runner),
            tolerance=_tolerance_for(run.version), limits=limits_from_settings(),
            run_key=f"{run.run_id}-{run.attempts}", container_image=run.container_image,
            inputs=_remote_inputs(run, staged) if run.runner == "gitlab" else (), observer=_RunObserver(run.pk),
        )
    except RunCancelled as exc:
        return _end_cancelled(run, str(exc))
    except RunnerGaveUp as exc:
        run_mark_error(run_pk=run.pk, message=str(exc), code=error_code_of(exc))
        return ExecutionRun.objects.get(pk=run.pk)
    except (SandboxUnavailable, RunnerUnavailable, StorageUnavailable, OSError) as exc:
        _back_to_queue(run)
        raise InfrastructureError(str(exc)) from exc
    finally:
        remove_tree(run_root)  # read-only staged inputs and folders the notebook closed too; leftovers are logged
    executed = _store_executed(verification.result.executed_notebook if verification.result else None)
    result = verification.result
    external = _external_fields(result.external if result else {})
    return _finish(
        run, executed=executed, verdict=verification.verdict, message=verification.message,
        report=verification.report, logs=(result.logs if result else "")[:LOG_LIMIT],
        environment=result.environment if result else {},
        peak_memory_bytes=result.peak_memory_bytes if result else None, staged_references=staged, **external,
    )


def run_mark_error(*, run_pk: int, message: str, code: str = "") -> None:
    """After the task gave up retrying: the run ends without a verdict, saying why (`code`: the failure's error
    code, e.g. image_not_found). A re-verification run's error is recorded in the version's history."""
    with transaction.atomic():
        run = (ExecutionRun.objects.select_for_update().select_related("version")
               .filter(pk=run_pk, status__in=[ExecutionRun.Status.QUEUED, ExecutionRun.Status.RUNNING]).first())
        if run is None:
            return
        run.status = ExecutionRun.Status.ERROR
        run.message = f"The run could not be carried out: {message}"[:2000]
        run.error_code = code[:40]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "message", "error_code", "finished_at"])
        if run.purpose == ExecutionRun.Purpose.REVERIFICATION:
            reverification_recorded(run)


def error_code_of(exc: BaseException) -> str:
    """The code of the first NbarchiveError (e.g. ImageNotFound: image_not_found) the failure was raised from."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NbarchiveError):
            return exc.code
        exc = exc.__cause__ or exc.__context__
    return ""


def run_cancel(*, run: ExecutionRun, actor) -> ExecutionRun:
    """Cancel a queued or running run: it ends `cancelled`, without a verdict. A run on GitLab has its pipeline
    cancelled after commit. Raises PermissionDenied (not an owner or moderator), Conflict (the run has ended)."""
    from repository.tasks import run_cancel_remote_task

    with transaction.atomic():
        run = ExecutionRun.objects.select_for_update().select_related("version__record").get(pk=run.pk)
        if not can_cancel_run(actor, run):
            raise PermissionDenied("Only the owners and moderators can cancel a verification run.")
        if not run.is_active:
            raise Conflict(f"The run is {run.get_status_display().lower()}; only a queued or running run can be "
                           "cancelled.")
        run.status = ExecutionRun.Status.CANCELLED
        run.finished_at = timezone.now()
        run.message = f"Cancelled by {getattr(actor, 'username', None) or 'the system'}."
        run.save(update_fields=["status", "finished_at", "message"])
        audit_event_append(actor=actor, action="run.cancel", version=run.version, data={"run": str(run.run_id)})
        if run.external_id:
            run_pk = run.pk
            transaction.on_commit(lambda: run_cancel_remote_task.delay(run_pk))
    return run


def run_cancel_remote(*, run_pk: int) -> bool:
    """Cancel the pipeline of a cancelled run on the runner that ran it (idempotent); True when asked.
    RunnerUnavailable when the runner cannot be reached (the task retries)."""
    run = ExecutionRun.objects.filter(pk=run_pk, status=ExecutionRun.Status.CANCELLED).exclude(external_id="").first()
    if run is None:
        return False
    cancel = getattr(get_runner(run.runner), "cancel", None)
    if cancel is None:
        return False
    cancel(run.external_id)
    return True


EXTERNAL_FIELDS = ("external_id", "external_url", "external_job_url")


class _RunObserver:
    """What a runner working elsewhere sees of the run row: it records the pipeline's whereabouts at once (so a
    cancel can reach it) and asks, at every poll, whether the run was cancelled."""

    def __init__(self, run_pk: int):
        self.run_pk = run_pk

    def external(self, **locations: str) -> None:
        fields = _external_fields(locations)
        if fields:
            ExecutionRun.objects.filter(pk=self.run_pk).update(**fields)

    def cancel_requested(self) -> bool:
        return ExecutionRun.objects.filter(pk=self.run_pk, status=ExecutionRun.Status.CANCELLED).exists()

    def pull_progress(self, done: int, total: int) -> None:
        """The image runner pulling the pinned image: bytes done and total, kept in the running run's environment
        (replaced by what ran when the run finishes) for the run page. At most one write a second."""
        now = time.monotonic()
        if done < total and now - getattr(self, "_last_progress", 0.0) < 1.0:
            return
        self._last_progress = now
        ExecutionRun.objects.filter(pk=self.run_pk, status=ExecutionRun.Status.RUNNING).update(
            environment={"pull": {"done_bytes": int(done), "total_bytes": int(total)}})


def _external_fields(locations: dict) -> dict:
    """The known location fields, URLs only when they are http(s) (they end up in links on the report page)."""
    fields = {}
    for key, value in locations.items():
        value = str(value or "")[:500]
        if key not in EXTERNAL_FIELDS or (key != "external_id" and not value.startswith(("https://", "http://"))):
            continue
        fields[key] = value
    return fields


def _remote_inputs(run: ExecutionRun, staged: list[dict]) -> tuple[InputFile, ...]:
    """Every staged input except the notebook, with a signed URL a remote job can fetch it from: for the GitLab
    runner only, the one whose jobs fetch inputs from outside (the run-data route exists only with it)."""
    from repository.services.run_data import run_data_url

    inputs = [InputFile(target_path=f.path, url=run_data_url(run=run, target_path=f.path), sha256=f.blob.sha256,
                        size=f.blob.size)
              for f in run.version.files.select_related("blob").exclude(path=run.notebook_path).order_by("path")]
    inputs += [InputFile(target_path=item["target_path"], url=run_data_url(run=run, target_path=item["target_path"]),
                         sha256=item["sha256"], size=item["size"])
               for item in staged]
    return tuple(inputs)


def _end_cancelled(run: ExecutionRun, message: str) -> ExecutionRun:
    """The runner stopped because the run was cancelled (here, or in GitLab): make sure it says so."""
    ExecutionRun.objects.filter(pk=run.pk, status__in=[ExecutionRun.Status.QUEUED, ExecutionRun.Status.RUNNING]).update(
        status=ExecutionRun.Status.CANCELLED, finished_at=timezone.now(), message=message[:2000])
    return ExecutionRun.objects.get(pk=run.pk)


def _stage(run: ExecutionRun, workdir: Path) -> list[dict]:
    version = run.version
    files = [FileSpec(path=f.path, blob_key=_settled_key(f.blob), sha256=f.blob.sha256)
             for f in version.files.select_related("blob")]
    references = [reference_spec(position, reference)
                  for position, reference in enumerate(version.data_references.all(), start=1)]
    cache_dir = cache_dir_from_settings()
    cache_dir.mkdir(parents=True, exist_ok=True)
    return stage_inputs(workdir=workdir, files=files, references=references, cache_dir=cache_dir,
                        policy=policy_from_settings())


def _repository_file(reference: DataReference) -> tuple[Version | None, str]:
    """The version a `repository_file` reference names ("<record id>/v<number>/<path>"), and the path in it."""
    record_id, _, rest = reference.identifier.partition("/v")
    number, _, path = rest.partition("/")
    version = Version.objects.filter(record__public_id=record_id,
                                     number=int(number) if number.isdigit() else -1).first()
    return version, path


def reference_blob_key(reference: DataReference) -> str | None:
    """The storage key of the repository file a `repository_file` reference names, or None when there is no such
    file or its version is no longer published (withdrawn)."""
    # Found by what it names, not by its checksum, so that staging verifies the checksum for real.
    version, path = _repository_file(reference)
    if version is None or version.state != Version.State.PUBLISHED:
        return None
    blob = Blob.objects.filter(version_files__version=version, version_files__path=path).first()
    return _settled_key(blob) if blob else None


def _settled_key(blob: Blob) -> str:
    """The blob's key once its bytes are at their content address. A file submitted seconds after its upload may
    still be at the temporary key that its promote task is about to delete; staging from that key would lose the
    race (NoSuchKey). Promoting here first is idempotent and safe beside the task (services/blobs.py)."""
    if not storage.is_temporary_key(blob.storage_key):
        return blob.storage_key
    try:
        return blob_promote(blob_pk=blob.pk) or blob.storage_key
    except StorageUnavailable:
        # The promote task may have moved it meanwhile; if not, staging reads the temporary key and names the
        # file when that fails too.
        return Blob.objects.filter(pk=blob.pk).values_list("storage_key", flat=True).first() or blob.storage_key


def repository_file_refusal(reference: DataReference) -> str | None:
    """Why a `repository_file` reference may not be staged now although its file exists: its version was
    withdrawn after the reference was accepted, or its files are closed (embargoed, restricted) to every owner of
    the referencing version. Checked at every run, so a withdrawal or a revoked grant stops it at once."""
    version, _ = _repository_file(reference)
    if version is None:
        return None
    record_id = reference.identifier.partition("/v")[0]
    if version.state == Version.State.PUBLISHED:
        return _closed_reference_refusal(reference, version, record_id)
    if version.state == Version.State.WITHDRAWN:
        when = f" on {version.withdrawn_at:%Y-%m-%d}" if version.withdrawn_at else ""
        gone = f"version {version.number} of record {record_id} was withdrawn{when}"
    else:
        gone = f"version {version.number} of record {record_id} is {version.get_state_display().lower()}"
    return f"{gone}, so its files can no longer be used; reference another version or another copy of the data."


def _closed_reference_refusal(reference: DataReference, version: Version, record_id: str) -> str | None:
    """The run stages what its version's owners may read, as they would download it themselves: a closed file
    only when one of them may read it (an owner of that record too, or a grant). A reference that belongs to no
    version (the verify_notebook command, run by an operator who has the database) is not asked."""
    if files_are_open(version) or reference.version_id is None:
        return None
    owners = reference.version.record.owners.all()
    if any(can_read_files(owner, version) for owner in owners):
        return None
    why = (f"embargoed until {version.embargo_until:%Y-%m-%d}" if effective_access(version) == FileAccess.EMBARGOED
           else "restricted")
    return (f"the files of version {version.number} of record {record_id} are {why}, and no owner of this record "
            f"may read them; ask that record's owners for access, or reference an open copy of the data.")


def reference_spec(position: int, reference: DataReference) -> ReferenceSpec:
    """What staging gets for the reference at `position` (1-based) of a version (the verify_notebook command
    builds its references the same way)."""
    blob_key = refusal = None
    if reference.kind == DataReference.Kind.REPOSITORY_FILE:
        blob_key = reference_blob_key(reference)
        refusal = repository_file_refusal(reference)
    return ReferenceSpec(
        label=f"data reference {position} ({reference.identifier[:200]})", kind=reference.kind,
        identifier=reference.identifier, target_path=reference.target_path, sha256=reference.sha256,
        size=reference.size, query=reference.query, blob_key=blob_key, refused=refusal,
    )


def _tolerance_for(version: Version) -> Tolerance:
    try:
        return Tolerance.from_dict(version.comparison_tolerance or None, default=default_tolerance())
    except ValueError:
        return default_tolerance()  # validated when saved; an old bad value must not block verification


def _store_executed(data: bytes | None) -> storage.StoredObject | None:
    """The executed notebook's bytes in storage; its Blob row is made by `_finish`, with the result."""
    if not data:
        return None
    try:
        return storage.store_stream(io.BytesIO(data), max_size=len(data), expected_size=len(data))
    except NbarchiveError:
        return None  # the report still stands; the executed notebook is a convenience


def _back_to_queue(run: ExecutionRun) -> None:
    ExecutionRun.objects.filter(pk=run.pk, claim=run.claim, status=ExecutionRun.Status.RUNNING).update(
        status=ExecutionRun.Status.QUEUED, started_at=None, heartbeat_at=None, claim=""
    )


def _finish(run: ExecutionRun, *, executed: storage.StoredObject | None = None, **fields) -> ExecutionRun:
    """Record the result; `executed` (the executed notebook, just stored) becomes a Blob in the same transaction.
    Unless that transaction commits a new Blob for it, its object is deleted at once: a result dropped, the same
    bytes stored before, or a database error must not leave an object only the 72-hour sweep would find."""
    keep_executed = False
    try:
        with transaction.atomic():
            run, created = _finish_in_transaction(run, executed, fields)
        keep_executed = created
    finally:
        if executed is not None and not keep_executed:
            storage.delete_quietly(executed.storage_key)
    return run


def _finish_in_transaction(run: ExecutionRun, executed: storage.StoredObject | None,
                           fields: dict) -> tuple[ExecutionRun, bool]:
    """Inside `_finish`'s transaction; returns the run and whether a new Blob now holds `executed`."""
    claim = run.claim
    run = ExecutionRun.objects.select_for_update().get(pk=run.pk)
    if run.status == ExecutionRun.Status.CANCELLED:
        return run, False  # cancelled while it ran: the cancellation stands, the late verdict is dropped
    if run.claim != claim:
        return run, False  # taken over after this worker stopped answering: the newer attempt records the result
    created = False
    if executed is not None:
        fields["executed_notebook"], created = blob_get_or_create(executed)
    run.status = ExecutionRun.Status.FINISHED
    run.finished_at = timezone.now()
    for name, value in fields.items():
        setattr(run, name, value)
    run.save()
    audit_event_append(actor=None, action="run.finish", version=run.version,
                       data={"run": str(run.run_id), "verdict": run.verdict})
    if run.purpose == ExecutionRun.Purpose.REVERIFICATION:
        reverification_recorded(run)
    search_verdict_refresh(version_pk=run.version_id)  # the search's verdict facet
    return run, created
