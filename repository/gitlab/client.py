"""GitLab through python-gitlab: the only module that imports `gitlab` (the integration's door, kept in the app
that alone talks to GitLab, as harvest/harvester/client.py is for OAI-PMH).

It speaks in plain values (ids, paths, bytes, small dataclasses) and translates every library or connection error
into ours:
- `GitLabUnavailable`: GitLab could not be reached or answered 5xx/429; trying again later may work.
- `GitLabNotFound`: the project, ref, file, tag or job does not exist (or our token may not see it).
- `GitLabRejected`: GitLab refused the request (4xx other than 404/429: bad ref, conflict, permissions).
- `GitLabTooLarge`: a download was larger than the caller's limit (nothing was kept).
All are `GitLabError` (an `NbarchiveError`), so the API renders them as problem+json if one reaches a view.

The token is ours (GITLAB_TOKEN) and never leaves this process: nothing written to a project contains it.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import gitlab
import gitlab.exceptions
import requests
from django.conf import settings

from repository.errors import NbarchiveError

logger = logging.getLogger(__name__)

DOWNLOAD_CHUNK = 1024 * 1024
MAX_ERROR_TEXT = 300


class GitLabError(NbarchiveError):
    status = 502
    code = "gitlab_error"
    title = "GitLab refused or failed the request"


class GitLabUnavailable(GitLabError):
    status = 503
    code = "gitlab_unavailable"
    title = "GitLab is not available; try again later"


class GitLabNotFound(GitLabError):
    status = 404
    code = "gitlab_not_found"
    title = "Not found on GitLab"


class GitLabRejected(GitLabError):
    status = 422
    code = "gitlab_rejected"
    title = "GitLab refused the request"


class GitLabTooLarge(GitLabError):
    status = 413
    code = "gitlab_too_large"
    title = "The download from GitLab is over the size limit"


@dataclass(frozen=True)
class Project:
    id: int
    path_with_namespace: str
    web_url: str
    default_branch: str  # "" for an empty repository
    visibility: str  # "public" | "internal" | "private" ("" when GitLab did not say)


@dataclass(frozen=True)
class Pipeline:
    id: int
    status: str
    web_url: str


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    status: str
    web_url: str
    failure_reason: str
    artifacts_size: int | None  # of the artifacts archive, when GitLab lists it
    started: bool  # a runner picked it up


@dataclass(frozen=True)
class TreeEntry:
    path: str
    type: str  # "blob" | "tree" | "commit" (submodule)
    id: str  # git object id (for blobs: sha1 of "blob <size>\0<bytes>")
    mode: str


@dataclass(frozen=True)
class Tag:
    name: str
    target: str  # the commit sha
    message: str


def _clip(value) -> str:
    return " ".join(str(value).split())[:MAX_ERROR_TEXT]


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn python-gitlab's and requests' exceptions into ours, saying what we were doing."""
    try:
        yield
    except GitLabError:
        raise
    except gitlab.exceptions.GitlabAuthenticationError as exc:
        raise GitLabRejected(f"{what}: GitLab refused our token ({_clip(exc.error_message)}); "
                             "check GITLAB_TOKEN.") from exc
    except gitlab.exceptions.GitlabError as exc:
        code = getattr(exc, "response_code", None) or 0
        message = _clip(getattr(exc, "error_message", "") or exc)
        if code == 404:
            raise GitLabNotFound(f"{what}: not found on GitLab ({message}).") from exc
        if code >= 500 or code == 429 or code == 0:
            raise GitLabUnavailable(f"{what}: GitLab answered {code or 'with an error'} ({message}).") from exc
        raise GitLabRejected(f"{what}: GitLab answered {code} ({message}).") from exc
    except (requests.RequestException, OSError) as exc:
        raise GitLabUnavailable(f"{what}: GitLab could not be reached ({_clip(exc)}).") from exc


class GitLabClient:
    """A GitLab instance as nbarchive uses it. One per task; cheap to create."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0):
        if not url:
            raise GitLabRejected("GitLab is not configured: set GITLAB_URL (and GITLAB_TOKEN).")
        # No retries inside python-gitlab: the callers own the retry policy (backoff, deadlines, Celery retries).
        self._gl = gitlab.Gitlab(url, private_token=token or None, timeout=timeout, retry_transient_errors=False,
                                 keep_base_url=True)

    @classmethod
    def from_settings(cls) -> GitLabClient:
        return cls(settings.GITLAB_URL, settings.GITLAB_TOKEN, timeout=settings.GITLAB_HTTP_TIMEOUT_SECONDS)

    # --- projects ---------------------------------------------------------------------------------------------
    def project(self, path_or_id: str | int) -> Project:
        with _translated(f"reading the GitLab project {path_or_id}"):
            return _project(self._gl.projects.get(path_or_id))

    def project_ensure(self, *, namespace: str, path: str, name: str, description: str = "",
                       visibility: str = "", ci_enabled: bool = True) -> Project:
        """The project namespace/path, created empty (with `visibility` when given, CI/CD switched off unless
        `ci_enabled`) when it is missing."""
        full_path = f"{namespace}/{path}" if namespace else path
        try:
            return self.project(full_path)
        except GitLabNotFound:
            pass
        with _translated(f"creating the GitLab project {full_path}"):
            data = {"name": name, "path": path, "description": description[:2000]}
            if visibility:
                data["visibility"] = visibility
            if not ci_enabled:
                data["builds_access_level"] = "disabled"
            if namespace:
                data["namespace_id"] = self._gl.namespaces.get(namespace).id
            try:
                created = self._gl.projects.create(data)
            except gitlab.exceptions.GitlabCreateError as exc:
                # Someone created it between our look and our create (a retried task): use theirs.
                if exc.response_code in (400, 409) and "taken" in str(exc.error_message).lower():
                    return self.project(full_path)
                raise
            return _project(created)

    # --- repository -------------------------------------------------------------------------------------------
    def commit(self, project_id: int, *, branch: str, message: str, files: dict[str, bytes],
               start_branch: str = "", existing: set[str] | frozenset[str] = frozenset(),
               deleted: set[str] | frozenset[str] = frozenset()) -> str:
        """One commit on `branch` (started from `start_branch` when it does not exist yet): `files` are created,
        or updated where their path is in `existing`; `deleted` paths are removed. Returns the commit sha."""
        actions = [{"action": "delete", "file_path": path} for path in sorted(deleted)]
        actions += [
            {"action": "update" if path in existing else "create", "file_path": path, "encoding": "base64",
             "content": base64.b64encode(content).decode("ascii")}
            for path, content in files.items()
        ]
        data = {"branch": branch, "commit_message": message, "actions": actions}
        if start_branch and start_branch != branch:
            data["start_branch"] = start_branch
        with _translated(f"committing to {branch} of GitLab project {project_id}"):
            commit = self._gl.projects.get(project_id, lazy=True).commits.create(data)
            return str(commit.id)

    def commit_sha(self, project_id: int, ref: str) -> str:
        """The commit a branch, tag or sha names."""
        with _translated(f"resolving {ref!r} in GitLab project {project_id}"):
            return str(self._gl.projects.get(project_id, lazy=True).commits.get(ref).id)

    def tree(self, project_id: int, ref: str) -> list[TreeEntry]:
        """Every entry of the repository at `ref`, recursively ([] for an empty repository)."""
        with _translated(f"listing the files of {ref!r} in GitLab project {project_id}"):
            project = self._gl.projects.get(project_id, lazy=True)
            try:
                items = project.repository_tree(ref=ref, recursive=True, get_all=True)
            except gitlab.exceptions.GitlabGetError as exc:
                if exc.response_code == 404:
                    return []
                raise
        return [TreeEntry(path=str(item["path"]), type=str(item["type"]), id=str(item.get("id", "")),
                          mode=str(item.get("mode", ""))) for item in items]

    @contextmanager
    def open_file(self, project_id: int, path: str, ref: str) -> Iterator[IO[bytes]]:
        """A readable stream of the file's raw bytes at `ref`; it is never held in memory whole."""
        with _translated(f"opening {path!r} at {ref!r} in GitLab project {project_id}"):
            chunks = self._gl.projects.get(project_id, lazy=True).files.raw(
                file_path=path, ref=ref, streamed=True, iterator=True, chunk_size=DOWNLOAD_CHUNK)
        stream = _ChunkStream(chunks, f"reading {path!r} from GitLab")
        try:
            yield stream
        finally:
            stream.close()

    # --- tags -------------------------------------------------------------------------------------------------
    def tag(self, project_id: int, name: str) -> Tag | None:
        with _translated(f"reading tag {name!r} of GitLab project {project_id}"):
            try:
                tag = self._gl.projects.get(project_id, lazy=True).tags.get(name)
            except gitlab.exceptions.GitlabGetError as exc:
                if exc.response_code == 404:
                    return None
                raise
        commit = getattr(tag, "commit", None) or {}
        return Tag(name=str(tag.name), target=str(commit.get("id") or getattr(tag, "target", "")),
                   message=str(getattr(tag, "message", "") or ""))

    def tag_create(self, project_id: int, *, name: str, ref: str, message: str) -> Tag:
        with _translated(f"creating tag {name!r} in GitLab project {project_id}"):
            tag = self._gl.projects.get(project_id, lazy=True).tags.create(
                {"tag_name": name, "ref": ref, "message": message})
        commit = getattr(tag, "commit", None) or {}
        return Tag(name=str(tag.name), target=str(commit.get("id") or ref), message=message)

    # --- pipelines and jobs -----------------------------------------------------------------------------------
    def pipeline_create(self, project_id: int, *, ref: str) -> Pipeline:
        with _translated(f"starting a pipeline on {ref!r} of GitLab project {project_id}"):
            return _pipeline(self._gl.projects.get(project_id, lazy=True).pipelines.create({"ref": ref}))

    def pipeline(self, project_id: int, pipeline_id: int) -> Pipeline:
        with _translated(f"reading pipeline {pipeline_id} of GitLab project {project_id}"):
            return _pipeline(self._gl.projects.get(project_id, lazy=True).pipelines.get(pipeline_id))

    def pipeline_jobs(self, project_id: int, pipeline_id: int) -> list[Job]:
        with _translated(f"listing the jobs of pipeline {pipeline_id}"):
            pipeline = self._gl.projects.get(project_id, lazy=True).pipelines.get(pipeline_id, lazy=True)
            return [_job(job) for job in pipeline.jobs.list(get_all=True)]

    def pipeline_cancel(self, project_id: int, pipeline_id: int) -> None:
        """Cancel the pipeline; cancelling one that already finished is not an error."""
        with _translated(f"cancelling pipeline {pipeline_id} of GitLab project {project_id}"):
            pipeline = self._gl.projects.get(project_id, lazy=True).pipelines.get(pipeline_id, lazy=True)
            try:
                pipeline.cancel()
            except gitlab.exceptions.GitlabCancelError as exc:
                if exc.response_code not in (400, 403, 405, 409):  # "already finished" comes back as one of these
                    raise

    def job(self, project_id: int, job_id: int) -> Job:
        with _translated(f"reading job {job_id} of GitLab project {project_id}"):
            return _job(self._gl.projects.get(project_id, lazy=True).jobs.get(job_id))

    def job_artifacts(self, project_id: int, job_id: int, destination: IO[bytes], *, max_bytes: int) -> int:
        """Stream the job's artifacts archive into `destination`; returns its size. GitLabTooLarge past max_bytes
        (the caller discards what was written), GitLabNotFound when the job has none."""
        with _translated(f"downloading the artifacts of job {job_id}"):
            job = self._gl.projects.get(project_id, lazy=True).jobs.get(job_id, lazy=True)
            chunks = job.artifacts(streamed=True, iterator=True, chunk_size=DOWNLOAD_CHUNK)
            size = 0
            try:
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise GitLabTooLarge(f"The artifacts of job {job_id} are larger than {max_bytes} bytes.")
                    destination.write(chunk)
            finally:
                _close_iterator(chunks)
            return size

    def job_trace(self, project_id: int, job_id: int, *, max_bytes: int) -> str:
        """The job's log, cut to its last `max_bytes` (the end says how it ended)."""
        with _translated(f"reading the log of job {job_id}"):
            job = self._gl.projects.get(project_id, lazy=True).jobs.get(job_id, lazy=True)
            chunks = job.trace(streamed=True, iterator=True, chunk_size=DOWNLOAD_CHUNK)
            kept = b""
            try:
                for chunk in chunks:
                    kept = (kept + chunk)[-max_bytes:]
            finally:
                _close_iterator(chunks)
        return kept.decode("utf-8", errors="replace")

    def job_trace_head(self, project_id: int, job_id: int, *, max_bytes: int) -> str:
        """The first `max_bytes` of the job's log: what the job said before anything it ran could add lines."""
        with _translated(f"reading the log of job {job_id}"):
            job = self._gl.projects.get(project_id, lazy=True).jobs.get(job_id, lazy=True)
            chunks = job.trace(streamed=True, iterator=True, chunk_size=min(DOWNLOAD_CHUNK, max_bytes))
            kept = b""
            try:
                for chunk in chunks:
                    kept += chunk
                    if len(kept) >= max_bytes:
                        break
            finally:
                _close_iterator(chunks)
        return kept[:max_bytes].decode("utf-8", errors="replace")


class _ChunkStream:
    """A file-like reader over python-gitlab's chunk iterator, translating errors while it reads."""

    def __init__(self, chunks, what: str):
        self._chunks = chunks
        self._buffer = b""
        self._what = what
        self._done = False

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            with _translated(self._what):
                try:
                    chunk = next(self._chunks)
                except StopIteration:
                    self._done = True
                    break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def close(self) -> None:
        _close_iterator(self._chunks)


def _close_iterator(chunks) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - closing a dropped connection may fail; nothing to do about it
            logger.debug("closing a GitLab download failed", exc_info=True)


def _project(project) -> Project:
    return Project(id=int(project.id), path_with_namespace=str(project.path_with_namespace),
                   web_url=str(getattr(project, "web_url", "") or ""),
                   default_branch=str(getattr(project, "default_branch", "") or ""),
                   visibility=str(getattr(project, "visibility", "") or ""))


def _pipeline(pipeline) -> Pipeline:
    return Pipeline(id=int(pipeline.id), status=str(pipeline.status), web_url=str(getattr(pipeline, "web_url", "")))


def _job(job) -> Job:
    artifacts_file = getattr(job, "artifacts_file", None) or {}
    size = artifacts_file.get("size") if isinstance(artifacts_file, dict) else None
    return Job(id=int(job.id), name=str(getattr(job, "name", "")), status=str(job.status),
               web_url=str(getattr(job, "web_url", "") or ""),
               failure_reason=str(getattr(job, "failure_reason", "") or ""),
               artifacts_size=size if isinstance(size, int) else None,
               started=bool(getattr(job, "started_at", None)))
