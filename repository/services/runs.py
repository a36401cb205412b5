"""Verification runs of a version: request one, execute it (the Celery task's body), record the outcome.

A run is requested in the transaction that needs it and queued after commit. Executing is idempotent: a task
delivered twice (acks_late after a worker crash) finds the run no longer queued and does nothing. Failures
of our own infrastructure (sandbox missing, storage down) raise InfrastructureError so that the task retries;
everything the notebook does wrong ends as a verdict.
"""

import io
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from repository import storage
from repository.errors import Conflict, NbarchiveError, StorageUnavailable
from repository.models import Blob, DataReference, ExecutionRun, Verdict, Version
from repository.runners.base import get_runner
from repository.runners.compare import Tolerance
from repository.runners.local import SandboxUnavailable
from repository.runners.staging import (
    FileSpec,
    ReferenceSpec,
    StagingError,
    cache_dir_from_settings,
    policy_from_settings,
    stage_inputs,
)
from repository.services.audit import audit_event_append
from repository.services.files import blob_get_or_create
from repository.services.verification import default_tolerance, limits_from_settings, notebook_verify

LOG_LIMIT = 200_000


class InfrastructureError(Exception):
    """Our side failed; the run may be retried and says nothing about the notebook."""


def run_request(*, version: Version, requested_by, supersede: bool = False) -> ExecutionRun:
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
        )
        audit_event_append(actor=requested_by, action="run.request", version=version, data={"run": str(run.run_id)})
        transaction.on_commit(lambda: run_verification_task.apply_async(args=[run.pk], queue="verification"))
    return run


def run_execute(*, run_pk: int) -> ExecutionRun | None:
    """Execute a queued run and record its verdict. Returns None when there was nothing to do."""
    with transaction.atomic():
        run = ExecutionRun.objects.select_for_update().filter(pk=run_pk).first()
        if run is None or run.status != ExecutionRun.Status.QUEUED:
            return None
        run.status = ExecutionRun.Status.RUNNING
        run.started_at = timezone.now()
        run.attempts += 1
        run.save(update_fields=["status", "started_at", "attempts"])
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
        )
    except (SandboxUnavailable, StorageUnavailable, OSError) as exc:
        _back_to_queue(run)
        raise InfrastructureError(str(exc)) from exc
    finally:
        shutil.rmtree(run_root, ignore_errors=True)
    executed_blob = _store_executed(verification.result.executed_notebook if verification.result else None)
    result = verification.result
    return _finish(
        run, verdict=verification.verdict, message=verification.message, report=verification.report,
        logs=(result.logs if result else "")[:LOG_LIMIT], environment=result.environment if result else {},
        peak_memory_bytes=result.peak_memory_bytes if result else None, executed_notebook=executed_blob,
        staged_references=staged,
    )


def run_mark_error(*, run_pk: int, message: str) -> None:
    """After the task gave up retrying: the run ends without a verdict, saying why."""
    ExecutionRun.objects.filter(pk=run_pk, status__in=[ExecutionRun.Status.QUEUED, ExecutionRun.Status.RUNNING]).update(
        status=ExecutionRun.Status.ERROR, message=f"The run could not be carried out: {message}"[:2000],
        finished_at=timezone.now(),
    )


def _stage(run: ExecutionRun, workdir: Path) -> list[dict]:
    version = run.version
    files = [FileSpec(path=f.path, blob_key=f.blob.storage_key, sha256=f.blob.sha256)
             for f in version.files.select_related("blob")]
    references = [_reference_spec(position, reference)
                  for position, reference in enumerate(version.data_references.all(), start=1)]
    cache_dir = cache_dir_from_settings()
    cache_dir.mkdir(parents=True, exist_ok=True)
    return stage_inputs(workdir=workdir, files=files, references=references, cache_dir=cache_dir,
                        policy=policy_from_settings())


def _reference_spec(position: int, reference: DataReference) -> ReferenceSpec:
    blob_key = None
    if reference.kind == DataReference.Kind.REPOSITORY_FILE:
        # Found by what it names, not by its checksum, so that staging verifies the checksum for real.
        record_id, _, rest = reference.identifier.partition("/v")
        number, _, path = rest.partition("/")
        blob = Blob.objects.filter(version_files__version__record__public_id=record_id,
                                   version_files__version__number=int(number) if number.isdigit() else -1,
                                   version_files__path=path).first()
        blob_key = blob.storage_key if blob else None
    return ReferenceSpec(
        label=f"data reference {position} ({reference.identifier[:200]})", kind=reference.kind,
        identifier=reference.identifier, target_path=reference.target_path, sha256=reference.sha256,
        size=reference.size, query=reference.query, blob_key=blob_key,
    )


def _tolerance_for(version: Version) -> Tolerance:
    try:
        return Tolerance.from_dict(version.comparison_tolerance or None, default=default_tolerance())
    except ValueError:
        return default_tolerance()  # validated when saved; an old bad value must not block verification


def _store_executed(data: bytes | None) -> Blob | None:
    if not data:
        return None
    try:
        stored = storage.store_stream(io.BytesIO(data), max_size=len(data), expected_size=len(data))
    except NbarchiveError:
        return None  # the report still stands; the executed notebook is a convenience
    with transaction.atomic():
        blob, created = blob_get_or_create(stored)
    if not created:
        storage.delete_quietly(stored.storage_key)
    return blob


def _back_to_queue(run: ExecutionRun) -> None:
    ExecutionRun.objects.filter(pk=run.pk, status=ExecutionRun.Status.RUNNING).update(
        status=ExecutionRun.Status.QUEUED, started_at=None
    )


def _finish(run: ExecutionRun, **fields) -> ExecutionRun:
    with transaction.atomic():
        run = ExecutionRun.objects.select_for_update().get(pk=run.pk)
        run.status = ExecutionRun.Status.FINISHED
        run.finished_at = timezone.now()
        for name, value in fields.items():
            setattr(run, name, value)
        run.save()
        audit_event_append(actor=None, action="run.finish", version=run.version,
                           data={"run": str(run.run_id), "verdict": run.verdict})
    return run
