"""The runner interface: how a notebook is executed, independent of models and the database.

A runner takes a RunSpec (a staged working directory, the notebook in it, the limits) and returns a
RunResult (the outcome, the executed notebook, logs, timings). `repository/services/runs.py` alone turns a
RunResult into an ExecutionRun row and a report. Runners are chosen by settings.RUNNER through `get_runner`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol


class RunnerUnavailable(Exception):
    """The runner's infrastructure failed for now (GitLab answered 5xx, the connection broke): retry the run later.
    Says nothing about the notebook."""


class RunnerGaveUp(Exception):
    """The runner waited as long as it may and gave up (no CI runner picked the job up): the run ends without a
    verdict, with this message; retrying at once would only wait again."""


class RunCancelled(Exception):
    """The run was cancelled (by a user, or in GitLab) while it ran; it ends without a verdict."""


class Outcome:
    """What happened to the execution itself (the comparison decides the rest of the verdict)."""

    COMPLETED = "completed"
    EXECUTION_FAILED = "execution_failed"
    TIMED_OUT = "timed_out"
    RESOURCE_LIMIT = "resource_limit"
    UNSUPPORTED_IMAGE = "unsupported_image"  # the pinned image has no Python with ipykernel (image runner)


@dataclass(frozen=True)
class SandboxLimits:
    memory_mb: int = 2048            # address space per process (RLIMIT_AS)
    cpu_seconds: int = 600           # CPU time per process (RLIMIT_CPU)
    max_processes: int = 64          # processes of the sandbox user (RLIMIT_NPROC)
    max_file_size_mb: int = 512      # largest file a process may write (RLIMIT_FSIZE)
    max_open_files: int = 256        # RLIMIT_NOFILE
    cell_timeout_seconds: int = 300  # wall clock per cell (nbclient)
    notebook_timeout_seconds: int = 1800  # wall clock for the whole run, enforced from outside
    max_output_mb: int = 50          # total size of all outputs of the executed notebook
    tmpfs_mb: int = 256              # /tmp inside the sandbox
    shm_mb: int = 64                 # /dev/shm inside the sandbox (shared memory outside RLIMIT_AS)


@dataclass(frozen=True)
class InputFile:
    """A staged input that a runner working elsewhere fetches itself: where it goes (relative to the notebook's
    working directory), a short-lived URL of nbarchive serving exactly the staged bytes, and their checksum."""

    target_path: str
    url: str
    sha256: str
    size: int


class RunObserver(Protocol):
    """How a runner that works elsewhere reports where the run lives and learns that it was cancelled."""

    def external(self, **locations: str) -> None: ...  # e.g. external_id, external_url, external_job_url

    def cancel_requested(self) -> bool: ...


@dataclass(frozen=True)
class RunSpec:
    workdir: Path          # the staged inputs; the notebook's folder is its working directory
    notebook_path: str     # relative to workdir
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    # Only for runners that execute elsewhere (gitlab); the local runner reads the staged workdir and ignores them.
    run_key: str = ""                       # unique per attempt of a run, e.g. "<run id>-<attempt>"
    container_image: str = ""               # the version's pinned image (registry/name@sha256:...)
    inputs: tuple[InputFile, ...] = ()      # every staged file except the notebook
    observer: RunObserver | None = None


@dataclass
class RunResult:
    outcome: str
    message: str
    executed_notebook: bytes | None
    logs: str
    started_at: datetime
    finished_at: datetime
    peak_memory_bytes: int | None = None
    failed_cell_index: int | None = None
    environment: dict = field(default_factory=dict)
    external: dict = field(default_factory=dict)  # where the run lived elsewhere (pipeline and job ids and URLs)


class Runner(Protocol):
    name: str

    def run(self, spec: RunSpec) -> RunResult: ...


def _local_runner() -> Runner:
    from repository.runners.local import LocalSandboxRunner

    return LocalSandboxRunner.from_settings()


def _image_runner() -> Runner:
    from repository.runners.image import ImageRunner

    return ImageRunner.from_settings()


# name -> a function building the runner from settings. Apps that bring a runner add theirs in ready()
# (the GitLab app adds "gitlab"), so the core never imports them.
_RUNNERS: dict[str, Callable[[], Runner]] = {"local": _local_runner, "image": _image_runner}


def register_runner(name: str, factory: Callable[[], Runner]) -> None:
    _RUNNERS[name] = factory


def runner_names() -> list[str]:
    return sorted(_RUNNERS)


def get_runner(name: str) -> Runner:
    factory = _RUNNERS.get(name)
    if factory is None:
        raise ValueError(f"Unknown runner '{name}'; RUNNER must be one of: {', '.join(runner_names())}.")
    return factory()
