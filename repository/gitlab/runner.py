"""The `gitlab` runner (RUNNER=gitlab): the notebook runs in a GitLab CI job, in the version's pinned image.

Per attempt of a run it commits the run's files (ci.py: the notebook, the manifest of its inputs, the job script,
the CI file) on a branch of its own (`nbarchive/run-<run key>`) of the verification project, starts a pipeline on
that branch, follows it with backoff, downloads the job's artifacts (size-limited) and reads `out/status.json`,
`out/executed.ipynb`, the driver's log and the environment description from them (artifacts.py). The result is a
RunResult like the local runner's, interpreted by the same function, so services/verification.py compares and
reports it with the same code.

Failures are verdicts or retries, never hangs:
- GitLab failing (5xx, unreachable) while committing or starting: retried with backoff, then RunnerUnavailable
  (the Celery task retries later, then the run ends in error);
- the CI runner cannot pull the pinned image (`image_pull_failure`: registry down, digest unknown, access
  denied): the operator's, RunnerUnavailable with the runner's own words from the trace (retried, then error);
- no CI runner picks the job up within GITLAB_PENDING_TIMEOUT_SECONDS: the pipeline is cancelled and RunnerGaveUp
  says so (the run ends in error, no verdict);
- the job exceeds its timeout (GitLab's `job_execution_timeout`, or our own deadline if GitLab does not stop it):
  `timed_out`;
- a favourable result (the notebook ran to the end) from a job that could have forged it (trust.py: the kernel
  shared the collector's uid, the job failed while its artifacts say `completed`, the job's log does not say how
  far the kernel was kept apart): RunnerGaveUp with a message for the operator (the run ends in error, no verdict);
  the isolation in the report is always the job log's, never the artifacts';
- artifacts missing or over GITLAB_ARTIFACTS_MAX_MB: an `execution_failed` / `resource_limit` verdict saying so;
- the run cancelled in nbarchive (the observer says so at each poll) or in GitLab: RunCancelled, and the pipeline
  is cancelled.
The total wait is bounded: pending deadline + job timeout + a grace period.
"""

from __future__ import annotations

import re
import secrets
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from repository.gitlab.artifacts import LOG_LIMIT_BYTES, Artifacts, artifacts_download, artifacts_read
from repository.gitlab.ci import JOB_NAME, UnsafeCiValue, checked_image, checked_path, commit_files
from repository.gitlab.client import (
    GitLabClient,
    GitLabError,
    GitLabNotFound,
    GitLabTooLarge,
    GitLabUnavailable,
    Job,
    Pipeline,
)
from repository.gitlab.trust import COLLECTOR, TRACE_HEAD_BYTES, job_isolation, refusal
from repository.runners.base import (
    Outcome,
    RunCancelled,
    RunnerGaveUp,
    RunnerUnavailable,
    RunResult,
    RunSpec,
)
from repository.runners.local import interpret_driver_status

RUN_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
PIPELINE_FINISHED = {"success", "failed", "canceled", "skipped", "manual"}
JOB_FINISHED = {"success", "failed", "canceled", "skipped", "manual"}
# GitLab's failure reasons that say nothing about the notebook: try the run again later.
INFRASTRUCTURE_FAILURES = {"runner_system_failure", "scheduler_failure", "runner_unsupported", "api_failure",
                           "data_integrity_failure", "archived_failure", "unmet_prerequisites"}
# The runner could not pull the job's image (gitlab-runner 16+; an older GitLab says runner_system_failure).
IMAGE_PULL_FAILURES = {"image_pull_failure"}
# The job waited in the queue until GitLab itself gave up on it.
STUCK_FAILURES = {"stuck_or_timeout_failure", "no_matching_runner"}
GRACE_SECONDS = 120  # after the job's own timeout, before we stop waiting for GitLab to enforce it
MB = 1024 * 1024


@dataclass
class GitLabRunner:
    client: GitLabClient
    project: str  # path or id of the verification project
    job_timeout_seconds: int = 2400
    pending_timeout_seconds: float = 900.0
    poll_initial_seconds: float = 2.0
    poll_max_seconds: float = 30.0
    artifacts_max_bytes: int = 200 * MB
    artifacts_expire_days: int = 30
    api_attempts: int = 4  # tries of one API step (commit, start, a poll) before GitLab counts as unavailable
    allow_shared_uid: bool = False  # accept a favourable result of a job whose kernel shared its uid (trust.py)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    name: str = "gitlab"

    @classmethod
    def from_settings(cls) -> GitLabRunner:
        if not settings.GITLAB_PROJECT:
            raise RunnerUnavailable("RUNNER=gitlab needs GITLAB_PROJECT, the verification project.")
        try:
            client = GitLabClient.from_settings()
        except GitLabError as exc:
            raise RunnerUnavailable(exc.detail) from exc
        return cls(
            client=client, project=settings.GITLAB_PROJECT,
            job_timeout_seconds=settings.GITLAB_JOB_TIMEOUT_SECONDS,
            pending_timeout_seconds=settings.GITLAB_PENDING_TIMEOUT_SECONDS,
            poll_initial_seconds=settings.GITLAB_POLL_INITIAL_SECONDS,
            poll_max_seconds=settings.GITLAB_POLL_MAX_SECONDS,
            artifacts_max_bytes=int(settings.GITLAB_ARTIFACTS_MAX_MB * MB),
            artifacts_expire_days=settings.GITLAB_ARTIFACTS_EXPIRE_DAYS,
            api_attempts=settings.GITLAB_API_ATTEMPTS,
            allow_shared_uid=settings.GITLAB_ALLOW_SHARED_UID,
        )

    def max_wait_seconds(self) -> float:
        """The longest `run` waits for GitLab once the pipeline exists."""
        return self.pending_timeout_seconds + self.job_timeout_seconds + GRACE_SECONDS

    # --- run -----------------------------------------------------------------------------------------------
    def run(self, spec: RunSpec) -> RunResult:
        started_at = datetime.now(UTC)
        try:
            image = checked_image(spec.container_image)
            notebook_path = checked_path(spec.notebook_path, "the notebook")
            files = self._files(spec, image, notebook_path)
        except UnsafeCiValue as exc:
            return RunResult(outcome=Outcome.EXECUTION_FAILED, message=str(exc), executed_notebook=None, logs="",
                             started_at=started_at, finished_at=datetime.now(UTC),
                             environment={"runner": self.name, "image": spec.container_image})
        project = self._api("reading the verification project", lambda: self.client.project(self.project))
        if project.visibility in ("public", "internal"):
            # Every run commits its notebook there, and keeps its executed notebook as an artifact: drafts', and
            # embargoed or restricted versions' (issue 17). The operator's to fix; the run waits and is retried.
            raise RunnerUnavailable(f"The verification project {project.path_with_namespace} is {project.visibility}: "
                                    "runs commit unpublished and closed notebooks there, so it must be private.")
        run_key = spec.run_key if RUN_KEY_RE.fullmatch(spec.run_key or "") else secrets.token_hex(8)
        branch = f"nbarchive/run-{run_key}"
        self._commit(project, branch, files, run_key)
        pipeline = self._api("starting the pipeline",
                             lambda: self.client.pipeline_create(project.id, ref=branch))
        external = {"external_id": f"{project.id}:{pipeline.id}", "external_url": pipeline.web_url}
        if spec.observer is not None:
            spec.observer.external(**external)
        pipeline, job, overdue = self._follow(project.id, pipeline, spec)
        if job is not None:
            external["external_job_url"] = job.web_url
        return self._result(project, pipeline, job, overdue, spec, image, started_at, external)

    def cancel(self, external_id: str) -> None:
        """Cancel the pipeline of a run (idempotent). RunnerUnavailable when GitLab cannot be asked."""
        project_id, _, pipeline_id = external_id.partition(":")
        if not (project_id.isdigit() and pipeline_id.isdigit()):
            raise ValueError(f"Not a GitLab run id: {external_id!r}")
        self._api("cancelling the pipeline", lambda: self.client.pipeline_cancel(int(project_id), int(pipeline_id)))

    # --- steps ---------------------------------------------------------------------------------------------
    def _files(self, spec: RunSpec, image: str, notebook_path: str) -> dict[str, bytes]:
        return commit_files(spec, image=image, notebook_path=notebook_path,
                            job_timeout_seconds=self.job_timeout_seconds,
                            artifacts_expire_days=self.artifacts_expire_days)

    def _commit(self, project, branch: str, files: dict[str, bytes], run_key: str) -> str:
        start = project.default_branch
        existing: set[str] = set()
        if start:
            tree = self._api("listing the verification project", lambda: self.client.tree(project.id, start))
            existing = {entry.path for entry in tree if entry.path in files}
        attempt = {"n": 0}

        def commit() -> str:
            attempt["n"] += 1
            if attempt["n"] > 1:  # an earlier attempt may have gone through before its answer was lost
                try:
                    return self.client.commit_sha(project.id, branch)
                except GitLabNotFound:
                    pass
            return self.client.commit(project.id, branch=branch, start_branch=start, files=files, existing=existing,
                                      message=f"nbarchive verification run {run_key}\n\n[skip ci]")

        return self._api("committing the run", commit)

    def _api(self, what: str, call):
        """One GitLab step, retried with backoff while GitLab is unavailable; then RunnerUnavailable."""
        delay = self.poll_initial_seconds
        for attempt in range(1, self.api_attempts + 1):
            try:
                return call()
            except GitLabUnavailable as exc:
                if attempt == self.api_attempts:
                    raise RunnerUnavailable(f"GitLab failed {attempt} times {what}: {exc.detail}") from exc
                self.sleep(delay)
                delay = min(delay * 2, self.poll_max_seconds)
            except GitLabError as exc:  # refused: a configuration problem (token, project) that waiting won't fix
                raise RunnerUnavailable(f"GitLab refused {what}: {exc.detail}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _follow(self, project_id: int, pipeline: Pipeline, spec: RunSpec) -> tuple[Pipeline, Job | None, bool]:
        """Poll until the job finished; returns (pipeline, job, overdue). Raises RunCancelled, RunnerGaveUp,
        RunnerUnavailable."""
        begun = self.clock()
        pending_deadline = begun + self.pending_timeout_seconds
        job_deadline: float | None = None
        delay = self.poll_initial_seconds
        failures = 0
        job_url_told = False
        job: Job | None = None
        while True:
            if spec.observer is not None and spec.observer.cancel_requested():
                self._cancel_quietly(project_id, pipeline.id)
                raise RunCancelled("The run was cancelled; its GitLab pipeline was cancelled too.")
            try:
                pipeline = self.client.pipeline(project_id, pipeline.id)
                jobs = self.client.pipeline_jobs(project_id, pipeline.id)
                failures = 0
            except GitLabError as exc:
                failures += 1
                if failures >= self.api_attempts or self.clock() - begun > self.max_wait_seconds():
                    self._cancel_quietly(project_id, pipeline.id)
                    raise RunnerUnavailable(f"GitLab stopped answering while the pipeline ran: {exc.detail}") from exc
                self.sleep(delay)
                delay = min(delay * 2, self.poll_max_seconds)
                continue
            job = next((j for j in jobs if j.name == JOB_NAME), jobs[0] if jobs else None)
            if job is not None and job.web_url and not job_url_told and spec.observer is not None:
                spec.observer.external(external_job_url=job.web_url)
                job_url_told = True
            if (job is not None and job.status in JOB_FINISHED) or pipeline.status in PIPELINE_FINISHED:
                if (job is not None and job.status == "canceled") or (
                        pipeline.status == "canceled" and (job is None or job.status not in JOB_FINISHED)):
                    raise RunCancelled("The pipeline was cancelled in GitLab before the job finished.")
                return pipeline, job, False
            now = self.clock()
            running = job is not None and (job.started or job.status == "running")
            if not running and now >= pending_deadline:
                self._cancel_quietly(project_id, pipeline.id)
                raise RunnerGaveUp(
                    f"No GitLab runner picked up the job within {self.pending_timeout_seconds:g} s, so the pipeline "
                    "was cancelled. Re-run the verification later; if this persists, the administrators should check "
                    "the GitLab runners of the verification project.")
            if running and job_deadline is None:
                job_deadline = now + self.job_timeout_seconds + GRACE_SECONDS
            if job_deadline is not None and now >= job_deadline:
                # GitLab should have stopped the job at its timeout; stop waiting for it ourselves.
                self._cancel_quietly(project_id, pipeline.id)
                return pipeline, job, True
            next_deadline = job_deadline if job_deadline is not None else pending_deadline
            self.sleep(max(0.05, min(delay, next_deadline - now)))
            delay = min(delay * 1.5, self.poll_max_seconds)

    def _cancel_quietly(self, project_id: int, pipeline_id: int) -> None:
        try:
            self.client.pipeline_cancel(project_id, pipeline_id)
        except GitLabError:
            pass  # best effort: the pipeline ends at its own timeout anyway

    def _result(self, project, pipeline: Pipeline, job: Job | None, overdue: bool, spec: RunSpec, image: str,
                started_at: datetime, external: dict) -> RunResult:
        environment = {"runner": self.name, "image": image, "gitlab_project": project.path_with_namespace,
                       "pipeline_url": pipeline.web_url, "job_url": job.web_url if job else ""}

        def result(outcome: str, message: str, *, executed=None, logs: str = "", cell=None) -> RunResult:
            return RunResult(outcome=outcome, message=message, executed_notebook=executed, logs=logs[-LOG_LIMIT_BYTES:],
                             started_at=started_at, finished_at=datetime.now(UTC), failed_cell_index=cell,
                             environment=environment, external=external)

        if job is None:
            raise RunnerGaveUp(f"The pipeline ended '{pipeline.status}' without running the verification job; the "
                               "administrators should check the verification project's CI settings.")
        if job.failure_reason in IMAGE_PULL_FAILURES:
            said = _last_line(self._trace(project.id, job.id))
            raise RunnerUnavailable(f"GitLab's runner could not pull the pinned image {image} ({job.failure_reason})"
                                    f"{f': {said}' if said else ''}. The registry may be down or no longer hold "
                                    "that digest; the notebook was not run.")
        if job.failure_reason in INFRASTRUCTURE_FAILURES:
            raise RunnerUnavailable(f"The GitLab job failed for a reason of GitLab's own ({job.failure_reason}).")
        if job.failure_reason in STUCK_FAILURES:
            raise RunnerGaveUp(f"GitLab gave up on the job ({job.failure_reason}): no runner could take it.")
        trace = self._trace(project.id, job.id)
        # How far the kernel was kept apart: from the job's log, never from the artifacts (trust.py).
        isolation = job_isolation(self._api("reading the job's log", lambda: self.client.job_trace_head(
            project.id, job.id, max_bytes=TRACE_HEAD_BYTES)))
        environment.update(kernel_isolation=isolation, collector=COLLECTOR)
        timed_out = overdue or job.failure_reason == "job_execution_timeout"
        artifacts, problem = self._artifacts(project.id, job, spec)
        if artifacts is not None:
            environment.update({key: artifacts.environment[key] for key in ("python_version", "packages")
                                if key in artifacts.environment})
        # The trace holds the job script's output, the tail of the driver's log included; the driver's own log
        # stands in when the trace could not be read.
        logs = trace or (artifacts.driver_log if artifacts else "")
        if timed_out:
            return result(Outcome.TIMED_OUT, f"The job ran longer than its timeout of {self.job_timeout_seconds} s "
                                             "and GitLab stopped it.",
                          executed=artifacts.executed if artifacts else None, logs=logs)
        if problem == "too_large":
            return result(Outcome.RESOURCE_LIMIT, f"The job's artifacts are larger than the limit of "
                                                  f"{self.artifacts_max_bytes // MB} MB, so they were not read; the "
                                                  "notebook's outputs are probably too large.", logs=logs)
        if artifacts is None or not artifacts.status:
            last = _last_line(trace)
            reason = f" ({job.failure_reason})" if job.failure_reason else ""
            return result(Outcome.EXECUTION_FAILED,
                          f"The GitLab job ended '{job.status}'{reason} without the artifacts that say how the "
                          f"notebook ran{f' (last log line: {last})' if last else ''}; the run cannot be judged.",
                          logs=logs)
        outcome, message, cell = interpret_driver_status(
            artifacts.status, returncode=None, timed_out=False, limits=spec.limits, executed=artifacts.executed,
            logs=artifacts.driver_log or trace, environment_name="The pinned image")
        if outcome == Outcome.COMPLETED:  # in the author's favour: only from a job that could not forge it
            refused = refusal(isolation=isolation, job_status=job.status,
                              claimed_outcome=artifacts.status.get("outcome"),
                              claimed_isolation=artifacts.environment.get("kernel_isolation", "unknown"),
                              allow_shared_uid=self.allow_shared_uid)
            if refused:
                raise RunnerGaveUp(refused)
        return result(outcome, message, executed=artifacts.executed, logs=logs, cell=cell)

    def _trace(self, project_id: int, job_id: int) -> str:
        try:
            return self.client.job_trace(project_id, job_id, max_bytes=LOG_LIMIT_BYTES)
        except GitLabError:
            return ""  # the log is a convenience: the artifacts decide

    def _artifacts(self, project_id: int, job: Job, spec: RunSpec) -> tuple[Artifacts | None, str]:
        """(artifacts, "") or (None, "missing" | "too_large")."""
        if job.artifacts_size is not None and job.artifacts_size > self.artifacts_max_bytes:
            return None, "too_large"
        with tempfile.TemporaryFile() as archive:
            try:
                self._api("downloading the artifacts", lambda: artifacts_download(self.client, project_id, job.id,
                                                                                  archive, self.artifacts_max_bytes))
            except RunnerUnavailable as exc:
                cause = exc.__cause__
                if isinstance(cause, GitLabTooLarge):
                    return None, "too_large"
                if isinstance(cause, GitLabNotFound):
                    return None, "missing"
                raise
            archive.seek(0)
            notebook_size = (Path(spec.workdir) / spec.notebook_path).stat().st_size
            executed_cap = notebook_size + spec.limits.max_output_mb * MB + MB
            try:
                return artifacts_read(archive, executed_cap), ""
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError):
                return None, "missing"  # not a zip we can read: as good as none


def _last_line(text: str) -> str:
    return next((line.strip()[:300] for line in reversed(text.splitlines()) if line.strip()), "")
