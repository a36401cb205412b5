"""Verifying one notebook in a staged working directory: check it, run it, compare it, decide the verdict.

`notebook_verify` knows nothing of the database, so the Celery task (through services/runs.py) and the
`verify_notebook` command follow exactly the same path.
"""

import io
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from repository.errors import InvalidNotebook
from repository.json_input import json_loads_bounded
from repository.models import Verdict
from repository.runners.base import InputFile, Outcome, Runner, RunObserver, RunResult, RunSpec, SandboxLimits
from repository.runners.compare import Tolerance, compare_notebooks
from repository.services.notebooks import MAX_NOTEBOOK_DEPTH, never_executed, notebook_validate

SUPPORTED_LANGUAGES = ("python",)
NEVER_EXECUTED_MESSAGE = ("The notebook was never executed: no code cell has an output or an execution count, so "
                          "there is no result to reproduce. Run it from top to bottom in Jupyter, save it with its "
                          "outputs and upload it again.")


@dataclass
class Verification:
    verdict: str
    message: str
    report: dict = field(default_factory=dict)
    result: RunResult | None = None


def limits_from_settings() -> SandboxLimits:
    return SandboxLimits(
        memory_mb=settings.RUNNER_MEMORY_MB,
        cpu_seconds=settings.RUNNER_CPU_SECONDS,
        max_processes=settings.RUNNER_MAX_PROCESSES,
        max_file_size_mb=settings.RUNNER_MAX_FILE_SIZE_MB,
        max_open_files=settings.RUNNER_MAX_OPEN_FILES,
        cell_timeout_seconds=settings.RUNNER_CELL_TIMEOUT_SECONDS,
        notebook_timeout_seconds=settings.RUNNER_NOTEBOOK_TIMEOUT_SECONDS,
        max_output_mb=settings.RUNNER_MAX_OUTPUT_MB,
        tmpfs_mb=settings.RUNNER_TMPFS_MB,
    )


def default_tolerance() -> Tolerance:
    return Tolerance(
        rtol=settings.COMPARE_RTOL,
        atol=settings.COMPARE_ATOL,
        pixel_tolerance=settings.COMPARE_PIXEL_TOLERANCE,
        max_differing_pixels=settings.COMPARE_MAX_DIFFERING_PIXELS,
    )


def kernel_problem(notebook: dict) -> str | None:
    """Why the runner cannot run this notebook's kernel, or None when it can."""
    metadata = notebook.get("metadata") or {}
    kernelspec = metadata.get("kernelspec") or {}
    language = str(kernelspec.get("language") or (metadata.get("language_info") or {}).get("name") or "").lower()
    name = str(kernelspec.get("name") or "")
    if not kernelspec and not language:
        return None  # no kernel recorded: nbclient's default Python kernel is the honest guess
    if language in SUPPORTED_LANGUAGES or (not language and name.lower().startswith("python")):
        return None
    shown = kernelspec.get("display_name") or name or language
    return (f"The notebook uses the kernel '{shown}' (language: {language or 'unknown'}); this runner executes "
            "Python notebooks only.")


def notebook_verify(*, workdir: Path, notebook_path: str, runner: Runner, tolerance: Tolerance,
                    limits: SandboxLimits, run_key: str = "", container_image: str = "",
                    inputs: tuple[InputFile, ...] = (), observer: RunObserver | None = None) -> Verification:
    """Check, run and compare. The keyword arguments after `limits` matter to runners that work elsewhere
    (gitlab) only; the local runner reads everything from `workdir`. A runner's RunnerUnavailable, RunnerGaveUp
    and RunCancelled pass through to the caller."""
    notebook_file = workdir / notebook_path
    try:
        with notebook_file.open("rb") as handle:
            submitted = notebook_validate(handle)
    except InvalidNotebook as exc:
        return Verification(Verdict.INVALID_NOTEBOOK, exc.detail)
    except OSError as exc:
        return Verification(Verdict.INVALID_NOTEBOOK, f"The notebook '{notebook_path}' could not be read: {exc}.")
    problem = kernel_problem(submitted)
    if problem:
        return Verification(Verdict.UNSUPPORTED_KERNEL, problem)
    if never_executed(submitted):
        return Verification(Verdict.INVALID_NOTEBOOK, NEVER_EXECUTED_MESSAGE)

    result = runner.run(RunSpec(workdir=workdir, notebook_path=notebook_path, limits=limits, run_key=run_key,
                                container_image=container_image, inputs=tuple(inputs), observer=observer))
    executed = _parse_executed(result.executed_notebook)
    report = compare_notebooks(submitted, executed, tolerance=tolerance,
                               max_image_pixels=settings.COMPARE_MAX_IMAGE_PIXELS) if executed is not None else {}
    report["execution"] = {
        "outcome": result.outcome,
        "message": result.message,
        "failed_cell_index": result.failed_cell_index,
        "seconds": round((result.finished_at - result.started_at).total_seconds(), 3),
        "peak_memory_bytes": result.peak_memory_bytes,
        "limits": limits.__dict__,
    }
    report["environment"] = result.environment
    report["container_image"] = container_image or None  # the image the version pins (environment: what ran)
    if result.outcome == Outcome.COMPLETED and executed is not None:
        verdict = report["verdict"]
        message = _comparison_message(report)
    else:
        verdict = result.outcome if result.outcome != Outcome.COMPLETED else Verdict.EXECUTION_FAILED
        message = result.message
    report["verdict"] = verdict
    return Verification(verdict, message, report, result)


def _parse_executed(data: bytes | None) -> dict | None:
    """The executed notebook came out of the sandbox: treat it as hostile input."""
    if not data:
        return None
    try:
        return notebook_validate(io.BytesIO(data))
    except InvalidNotebook:
        try:
            document = json_loads_bounded(data, max_depth=MAX_NOTEBOOK_DEPTH)
        except ValueError:  # not JSON, or nested too deeply to walk (JSONTooDeep)
            return None
        return document if isinstance(document, dict) and isinstance(document.get("cells"), list) else None


def _comparison_message(report: dict) -> str:
    summary = report.get("summary", {})
    verdict = report.get("verdict")
    if verdict == Verdict.REPRODUCED:
        return f"All {summary.get('code_cells', 0)} code cells reproduced their outputs."
    if verdict == Verdict.REPRODUCED_WITH_DIFFERENCES:
        return (f"Reproduced within tolerance: {summary.get('within_tolerance', 0)} cell(s) differ slightly, "
                f"{summary.get('skipped', 0)} skipped.")
    return f"{summary.get('differ', 0)} of {summary.get('code_cells', 0)} code cells produced different outputs."
