"""A fake GitLab (REST API v4) over plain HTTP on 127.0.0.1, for tests, whose CI pipelines really run.

It speaks what python-gitlab sends, so tests drive the real `gitlab.Gitlab(server.url, private_token=...)`:

- Authentication: `PRIVATE-TOKEN: <token>`, `Authorization: Bearer <token>` or `?private_token=`. A missing,
  wrong or revoked token is 401 `{"message": "401 Unauthorized"}` on every endpoint. `add_token()` makes tokens
  limited to some projects (others are 404 "404 Project Not Found" to them, creating projects is 403, as for a
  GitLab project access token), read-only (`scopes=("read_api",)`: writes are 403 insufficient_scope) or of a
  lower role (a reporter cannot push: 403 "403 Forbidden").
- Projects (id numeric or the URL-encoded path `group%2Fname`), namespaces and groups, the user of a token.
- Repository: commits with create/update/delete/move/chmod actions (text or base64, branch, start_branch,
  start_sha, force), commits by sha or ref, files (JSON with base64 content, /raw, HEAD, create/update/delete),
  tree (path, ref, recursive, pagination), archive (tar.gz, tar, zip), blobs, branches, tags (lightweight or
  annotated with a message). Refs are branch names, tag names, or full or abbreviated shas.
- CI: POST /projects/:id/pipeline reads the CI file (`.gitlab-ci.yml`, or the project's ci_config_path) at the
  ref; see gitlab_ci.py for the part of the CI language understood. Jobs go created -> pending -> running ->
  success | failed | canceled (or skipped / manual), stage after stage; the pipeline's status follows its jobs as
  GitLab composes it. Jobs REALLY RUN, in the local bubblewrap sandbox (gitlab_job_sandbox.py): the `image:` is
  recorded and named in the trace but maps to the local kernel environment (var/kernel-env: `python3` is the
  kernel env's, with nbclient and ipykernel). Cancel, retry, delete, job trace (live while running), job
  artifacts (zip; 404 when there are none; single files; by ref and job name), pipeline variables.
- Like GitLab, a commit or a tag created through the API (or with the seeding helpers) starts a "push" pipeline
  when the project has a CI file at that commit, jobs are enabled and workflow:rules let it (a commit message
  with [skip ci] / [ci skip] records a "skipped" pipeline without jobs; API pipelines ignore it, as in GitLab);
  `push_pipelines = False` turns that off. Pipeline variables can be restricted per
  project (ci_pipeline_variables_minimum_override_role, as on GitLab 17.7+ for new projects).
- Project hooks: stored through the API; tag pushes (tags created or deleted through the API or
  `create_tag`/`delete_tag`) are POSTed to hooks with tag_push_events, with X-Gitlab-Event, X-Gitlab-Token and
  X-Gitlab-Event-UUID, from a background thread; see `hook_deliveries`. `tag_push_event(project, tag)` builds
  the body without sending anything, for tests that post it to the app themselves.

Switches for tests: `fail_next(n, status, path_contains=..., method=...)`, `hang(seconds, ...)`,
`runner_unavailable = True` (jobs stay pending for ever, unless `pending_timeout_seconds` is set: then they fail
with stuck_or_timeout_failure, as GitLab does after a day), `drop_artifacts = True` (jobs succeed but upload
nothing), `max_job_seconds` (the runner's maximum timeout: caps every job's timeout), `image_policy` (a callable
deciding which images "pull"; the others fail with image_pull_failure), `runner_tags`, `max_artifacts_bytes`,
`runner_concurrency`. Introspection: `requests`, `project()`, `files_at()`, `tags()`, `pipelines()`,
`pipeline()`, `job()`, `wait_for_pipeline()`, `wait_idle()`, `hook_deliveries`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import re
import secrets
import tarfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from tests.fakes import gitlab_ci
from tests.fakes.gitlab_job_sandbox import DEFAULT_KERNEL_ENV, JobRun, JobSpec, sandbox_problem

HANDLER_SOCKET_TIMEOUT = 10
GITLAB_VERSION = "17.5.0-fake"
ZERO_SHA = "0" * 40
ACTIVE = ("created", "waiting_for_resource", "preparing", "pending", "running")
FINISHED = ("success", "failed", "canceled", "skipped", "manual")
ROLES = {"guest": 10, "reporter": 20, "developer": 30, "maintainer": 40, "owner": 50}
PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SKIP_CI = re.compile(r"\[(?:skip ci|ci skip)\]", re.IGNORECASE)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def _blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63] or "x"


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def valid_ref_name(name: str) -> bool:
    """git check-ref-format, roughly: what GitLab accepts as a branch or tag name."""
    if not name or name == "@" or name.startswith(("-", "/")) or name.endswith(("/", ".", ".lock")):
        return False
    if ".." in name or "@{" in name or "//" in name or any(ord(char) < 32 or char in " ~^:?*[\\\x7f" for char in name):
        return False
    return all(not part.startswith(".") for part in name.split("/"))


def valid_file_path(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and "\x00" not in path and not path.startswith("/") and all(
        part not in ("", ".", "..") for part in parts) and ".git" not in parts


# --- the answer to a request ---------------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    kill: list = field(default_factory=list)  # JobRuns to kill once the lock is released (cancelled jobs)


class ApiError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(f"{status}: {body}")
        self.answer = Answer(status, body, dict(headers or {}))


def _not_found(what: str = "") -> ApiError:
    return ApiError(404, {"message": f"404 {what} Not Found".replace("  ", " ")} if what else {"error": "404 Not Found"})


def _bad_request(message: Any) -> ApiError:
    return ApiError(400, {"message": message})


def _missing(name: str) -> ApiError:
    return ApiError(400, {"error": f"{name} is missing"})


FORBIDDEN = {"message": "403 Forbidden"}


# --- the model -----------------------------------------------------------------------------------------------------


@dataclass
class Blob:
    content: bytes
    executable: bool = False

    @property
    def sha(self) -> str:
        return _blob_sha(self.content)


@dataclass
class Commit:
    id: str
    parent_ids: list[str]
    tree: dict[str, Blob]
    message: str
    author_name: str
    author_email: str
    created_at: datetime
    stats: dict[str, int]


@dataclass
class Tag:
    name: str
    commit_id: str
    message: str | None
    target: str  # the tag object's id for an annotated tag, else the commit's
    created_at: datetime | None


@dataclass
class Hook:
    id: int
    url: str
    token: str
    push_events: bool
    tag_push_events: bool
    enable_ssl_verification: bool
    created_at: datetime


@dataclass
class Namespace:
    id: int
    full_path: str
    name: str
    kind: str  # user | group
    parent_id: int | None = None

    @property
    def path(self) -> str:
        return self.full_path.rsplit("/", 1)[-1]


@dataclass
class Project:
    id: int
    name: str
    path: str
    namespace: Namespace
    description: str
    created_at: datetime
    default_branch: str | None = None
    visibility: str = "private"
    jobs_enabled: bool = True
    ci_config_path: str = ".gitlab-ci.yml"
    pipeline_variables_role: str = "developer"
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)
    hooks: dict[int, Hook] = field(default_factory=dict)
    pipeline_ids: list[int] = field(default_factory=list)
    next_pipeline_iid: int = 1
    last_activity_at: datetime | None = None

    @property
    def path_with_namespace(self) -> str:
        return f"{self.namespace.full_path}/{self.path}"


@dataclass
class Job:
    id: int
    project_id: int
    pipeline_id: int
    plan: gitlab_ci.PlannedJob
    status: str = "created"
    created_at: datetime = field(default_factory=_now)
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    failure_reason: str | None = None
    trace: bytes = b""
    artifacts_zip: bytes | None = None
    retried: bool = False
    run: JobRun | None = None
    timeout_seconds: float = 3600.0
    image: str = ""
    environment: dict[str, str] = field(default_factory=dict)  # the variables the job ran with
    exit_code: int | None = None

    @property
    def name(self) -> str:
        return self.plan.name


@dataclass
class Pipeline:
    id: int
    iid: int
    project_id: int
    sha: str
    ref: str
    tag: bool
    source: str
    variables: list[dict[str, str]]
    stages: list[str]
    user: dict
    status: str = "created"
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    job_ids: list[int] = field(default_factory=list)  # current jobs (not retried), in order
    canceled: bool = False
    yaml_errors: str | None = None
    before_sha: str = ZERO_SHA


@dataclass
class Token:
    value: str
    user: dict
    projects: set | None  # ids (int) and lower-cased paths (str); None: every project
    scopes: frozenset[str]
    role: int
    revoked: bool = False


@dataclass
class Fault:
    kind: str  # "fail" | "hang"
    remaining: int | None
    status: int = 500
    path_contains: str | None = None
    method: str | None = None
    seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    def applies(self, method: str, path: str) -> bool:
        return (self.method in (None, method)) and (self.path_contains is None or self.path_contains in path)


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw, with the query string
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int | None = None
    fault: str | None = None

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


# --- the server ----------------------------------------------------------------------------------------------------


class FakeGitLab:
    """GitLab's REST API v4 at `url` + /api/v4. `with FakeGitLab() as server:` or start()/stop().

    `token` is a token of the administrator `root` that reaches every project.
    """

    def __init__(self, *, token: str = "glpat-fake-admin-token", host: str = "127.0.0.1", port: int = 0,
                 kernel_env: Path | str | None = None, max_job_seconds: float | None = None,
                 runner_concurrency: int = 2, push_pipelines: bool = True, deliver_hooks: bool = True):
        self.token = token
        self.kernel_env = Path(kernel_env) if kernel_env else _default_kernel_env()
        # switches (plain attributes: set them at any time)
        self.max_job_seconds = max_job_seconds
        self.runner_concurrency = runner_concurrency
        self.runner_unavailable = False
        self.runner_tags: set[str] | None = None  # None: the runner takes jobs with any tags
        self.pending_timeout_seconds: float | None = None
        self.drop_artifacts = False
        self.image_policy: Callable[[str], bool] | None = None
        self.max_artifacts_bytes = 100 * 1024 * 1024
        self.max_trace_bytes = 4 * 1024 * 1024
        self.default_job_timeout_seconds = gitlab_ci.DEFAULT_TIMEOUT_SECONDS
        self.push_pipelines = push_pipelines
        self.deliver_hooks = deliver_hooks
        self.tmpfs_mb = 512

        self.stopping = threading.Event()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._ids = {"namespace": 1, "project": 41, "pipeline": 500, "job": 9000, "hook": 1, "user": 1}
        self._namespaces: dict[str, Namespace] = {}
        self._projects: dict[int, Project] = {}
        self._pipelines: dict[int, Pipeline] = {}
        self._jobs: dict[int, Job] = {}
        self._tokens: dict[str, Token] = {}
        self._users: dict[str, dict] = {}
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[dict] = []
        self._workers: list[threading.Thread] = []
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        self.admin = self._user("root", "Administrator", is_admin=True)
        self._tokens[token] = Token(token, self.admin, None, frozenset({"api"}), ROLES["owner"])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="fake-gitlab-http")
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True, name="fake-gitlab-runner")
        self._started = self._stopped = False

    # --- lifecycle ---

    @property
    def url(self) -> str:
        """The instance's URL, as given to gitlab.Gitlab() (the API is under /api/v4)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    def start(self) -> Self:
        self._thread.start()
        self._dispatcher.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Cancel every job (killing its processes), stop listening, join the threads. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.stopping.set()
        with self._lock:
            self._changed.notify_all()
        if self._started:
            self._dispatcher.join(timeout=5)  # no job starts after this
        with self._lock:
            runs = [job.run for job in self._jobs.values() if job.run is not None]
        for run in runs:
            run.cancel()
        if self._started:
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._started:
            self._thread.join(timeout=5)
        for worker in list(self._workers):
            worker.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def sandbox_problem(self) -> str | None:
        """Why jobs cannot run here (no bwrap, no kernel environment), or None."""
        return sandbox_problem(self.kernel_env)

    # --- faults ---

    def fail_next(self, n: int = 1, status: int = 500, *, path_contains: str | None = None, method: str | None = None,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next `n` matching requests with `status` (not carried out). `path_contains` is matched
        against the raw request path, e.g. "/pipeline" or "/artifacts"."""
        self._add_fault(Fault("fail", n, status, path_contains, method.upper() if method else None,
                              headers=dict(headers or {})))

    def hang(self, seconds: float, *, times: int | None = 1, path_contains: str | None = None,
             method: str | None = None) -> None:
        """Wait `seconds`, then close the connection without answering (not carried out)."""
        self._add_fault(Fault("hang", times, 0, path_contains, method.upper() if method else None, seconds=seconds))

    def recover(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if not fault.applies(method, path):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    # --- tokens and users ---

    def add_token(self, value: str | None = None, *, projects: list | tuple | set | None = None,
                  scopes: tuple[str, ...] = ("api",), role: str = "maintainer", username: str | None = None) -> str:
        """A new token; returns its value. `projects` (ids or paths) limits it as a project access token is."""
        value = value or f"glpat-{secrets.token_urlsafe(15)}"
        if username is None:
            username = f"project_bot_{secrets.token_hex(3)}" if projects is not None else f"user_{secrets.token_hex(3)}"
        with self._lock:
            user = self._users.get(username) or self._user(username, username, bot=projects is not None)
            limited = None if projects is None else {item if isinstance(item, int) else str(item).lower()
                                                    for item in projects}
            self._tokens[value] = Token(value, user, limited, frozenset(scopes), ROLES[role])
        return value

    def revoke_token(self, value: str) -> None:
        with self._lock:
            self._tokens[value].revoked = True

    def _user(self, username: str, name: str, *, is_admin: bool = False, bot: bool = False) -> dict:
        user_id = self._next("user")
        user = {"id": user_id, "username": username, "name": name, "state": "active", "locked": False,
                "avatar_url": None, "web_url": f"{self.url}/{username}", "is_admin": is_admin, "bot": bot,
                "email": f"{username}@fake-gitlab.test", "public_email": None}
        self._users[username] = user
        if not bot:
            self._namespace(username, kind="user")
        return user

    def _next(self, kind: str) -> int:
        with self._lock:
            self._ids[kind] += 1
            return self._ids[kind]

    # --- seeding (not logged as requests) ---

    def create_group(self, full_path: str) -> dict:
        with self._lock:
            return self._namespace_json(self._namespace(full_path, kind="group"))

    def create_project(self, path_with_namespace: str, *, default_branch: str = "main",
                       files: dict[str, bytes | str] | None = None, description: str = "",
                       jobs_enabled: bool = True, message: str = "Initial commit") -> dict:
        """A project (its groups created as needed), optionally with a first commit of `files`."""
        namespace_path, _, path = path_with_namespace.rpartition("/")
        if not namespace_path:
            raise ValueError("give the project's path with its namespace, e.g. group/name")
        with self._lock:
            namespace = self._namespace(namespace_path, kind="group" if namespace_path not in self._users else "user")
            project = self._new_project(namespace, name=path, path=path, description=description, user=self.admin)
            project.jobs_enabled = jobs_enabled
            project.default_branch = default_branch
        if files:
            self.commit(project.id, files, branch=default_branch, message=message)
        return self.project(project.id)

    def commit(self, project: int | str, files: dict[str, bytes | str | None], *, branch: str | None = None,
               message: str = "Update files", start_branch: str | None = None) -> str:
        """Commit as a push would (a push pipeline may start): `files` maps paths to content; None deletes.
        Returns the new commit's sha."""
        with self._lock:
            project_obj = self._project(project)
            branch = branch or project_obj.default_branch or "main"
            head = self._branch_head(project_obj, start_branch or branch)
            actions = []
            for path, content in files.items():
                exists = head is not None and path in head.tree
                if content is None:
                    actions.append({"action": "delete", "file_path": path})
                    continue
                data = content.encode() if isinstance(content, str) else content
                actions.append({"action": "update" if exists else "create", "file_path": path,
                                "content": base64.b64encode(data).decode(), "encoding": "base64"})
            params = {"branch": branch, "commit_message": message, "actions": actions}
            if start_branch:
                params["start_branch"] = start_branch
            commit = self._create_commit(project_obj, params, self.admin)
        return commit.id

    def create_tag(self, project: int | str, name: str, ref: str, message: str | None = None) -> dict:
        """Create a tag as `git push` of a tag would: hooks fire, a tag pipeline may start."""
        with self._lock:
            project_obj = self._project(project)
            tag = self._create_tag(project_obj, {"tag_name": name, "ref": ref, "message": message}, self.admin)
            return self._tag_json(project_obj, tag)

    def delete_tag(self, project: int | str, name: str) -> None:
        with self._lock:
            project_obj = self._project(project)
            self._delete_tag(project_obj, name, self.admin)

    def set_project(self, project: int | str, **settings: Any) -> dict:
        """Change settings as PUT /projects/:id does (jobs_enabled, ci_config_path,
        ci_pipeline_variables_minimum_override_role, default_branch, description, ...)."""
        with self._lock:
            project_obj = self._project(project)
            self._update_project(project_obj, settings)
            return self._project_json(project_obj)

    # --- introspection ---

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def hook_deliveries(self) -> list[dict]:
        """Each delivery: hook_id, url, event, headers, body (dict), status (int or None), error (str or None)."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def project(self, project: int | str) -> dict | None:
        """The project as the API shows it, plus branches {name: sha}, tags [names] and hooks; None if missing."""
        with self._lock:
            try:
                project_obj = self._project(project)
            except KeyError:
                return None
            data = self._project_json(project_obj)
            data["branches"] = dict(project_obj.branches)
            data["tag_names"] = sorted(project_obj.tags)
            data["hooks"] = [self._hook_json(project_obj, hook) | {"token": hook.token}
                             for hook in project_obj.hooks.values()]
            data["ci_config_path"] = project_obj.ci_config_path
            return data

    def files_at(self, project: int | str, ref: str | None = None) -> dict[str, bytes]:
        """Every file of the repository at `ref` (default branch by default): path -> content."""
        with self._lock:
            project_obj = self._project(project)
            commit = self._resolve(project_obj, ref or project_obj.default_branch or "")
            if commit is None:
                raise KeyError(f"no ref {ref!r} in {project_obj.path_with_namespace}")
            return {path: blob.content for path, blob in sorted(commit.tree.items())}

    def tags(self, project: int | str) -> dict[str, dict]:
        """name -> {name, commit_sha, message, target, annotated}."""
        with self._lock:
            project_obj = self._project(project)
            return {name: {"name": name, "commit_sha": tag.commit_id, "message": tag.message, "target": tag.target,
                           "annotated": tag.message is not None}
                    for name, tag in sorted(project_obj.tags.items())}

    def pipelines(self, project: int | str) -> list[dict]:
        """Every pipeline of the project, oldest first, each with its jobs (see `pipeline()`)."""
        with self._lock:
            project_obj = self._project(project)
            return [self._pipeline_view(self._pipelines[pid]) for pid in project_obj.pipeline_ids
                    if pid in self._pipelines]

    def pipeline(self, pipeline_id: int) -> dict:
        """The pipeline as the API shows it, plus `variables`, `jobs` (see `job()`) and `yaml_errors`."""
        with self._lock:
            return self._pipeline_view(self._pipelines[pipeline_id])

    def job(self, job_id: int) -> dict:
        """The job as the API shows it, plus image, script, before_script, after_script, timeout_seconds,
        environment (the variables it ran with), artifact_names, trace (str), exit_code, pid (while running)."""
        with self._lock:
            job = self._jobs[job_id]
            data = self._job_json(job)
            plan = job.plan
            run = job.run
            data.update({
                "image": job.image or plan.image, "script": list(plan.script),
                "before_script": list(plan.before_script), "after_script": list(plan.after_script),
                "timeout_seconds": job.timeout_seconds, "environment": dict(job.environment),
                "artifact_names": _zip_names(job.artifacts_zip), "exit_code": job.exit_code,
                "retried": job.retried, "pid": run.pid if run else None,
            })
        data["trace"] = (run.trace() if run else job.trace).decode("utf-8", "replace")
        return data

    def wait_for_pipeline(self, pipeline_id: int, timeout: float = 60.0) -> dict:
        """Block until the pipeline is finished (or `timeout`: TimeoutError); return `pipeline()`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._pipelines[pipeline_id].status not in FINISHED:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"pipeline {pipeline_id} is still {self._pipelines[pipeline_id].status}")
                self._changed.wait(min(remaining, 0.2))
        return self.pipeline(pipeline_id)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until no job is running (pending jobs the runner does not take are ignored)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while any(job.status == "running" for job in self._jobs.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("jobs are still running")
                self._changed.wait(min(remaining, 0.2))

    def tag_push_event(self, project: int | str, tag: str, *, deleted: bool = False) -> dict:
        """The JSON body GitLab POSTs for a Tag Push Hook (headers: X-Gitlab-Event: Tag Push Hook, X-Gitlab-Token)."""
        with self._lock:
            project_obj = self._project(project)
            tag_obj = project_obj.tags.get(tag)
            if tag_obj is None and not deleted:
                raise KeyError(f"no tag {tag!r} in {project_obj.path_with_namespace}")
            return self._tag_push_body(project_obj, tag, tag_obj, self.admin, deleted=deleted)

    # ================================================================================================================
    # internals: the model (call with the lock held)
    # ================================================================================================================

    def _namespace(self, full_path: str, *, kind: str) -> Namespace:
        existing = self._namespaces.get(full_path.lower())
        if existing:
            return existing
        parent_path, _, name = full_path.rpartition("/")
        parent = self._namespace(parent_path, kind="group") if parent_path else None
        if not PATH_SEGMENT.match(name):
            raise ValueError(f"invalid namespace path {full_path!r}")
        namespace = Namespace(self._next("namespace"), full_path, name, kind, parent.id if parent else None)
        self._namespaces[full_path.lower()] = namespace
        return namespace

    def _namespace_by(self, ident: Any) -> Namespace | None:
        text = str(ident)
        if text.isdigit():
            return next((ns for ns in self._namespaces.values() if ns.id == int(text)), None)
        return self._namespaces.get(text.lower())

    def _new_project(self, namespace: Namespace, *, name: str, path: str, description: str, user: dict) -> Project:
        if not PATH_SEGMENT.match(path) or path.endswith((".git", ".atom", ".")):
            raise _bad_request({"path": [("can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', "
                                          "end in '.', '.git' or '.atom'.")]})
        if any(p.namespace.id == namespace.id and p.path.lower() == path.lower() for p in self._projects.values()):
            raise _bad_request({"path": ["has already been taken"], "name": ["has already been taken"]})
        project = Project(self._next("project"), name, path, namespace, description, _now())
        project.last_activity_at = project.created_at
        self._projects[project.id] = project
        return project

    def _project(self, ident: int | str) -> Project:
        text = str(ident)
        if text.isdigit():
            project = self._projects.get(int(text))
        else:
            project = next((p for p in self._projects.values() if p.path_with_namespace.lower() == text.lower()), None)
        if project is None:
            raise KeyError(f"no project {ident!r}")
        return project

    def _branch_head(self, project: Project, branch: str) -> Commit | None:
        sha = project.branches.get(branch)
        return project.commits[sha] if sha else None

    def _resolve(self, project: Project, ref: str) -> Commit | None:
        """A branch, a tag, or a full or abbreviated (4+) sha."""
        if not ref:
            return None
        if ref in project.branches:
            return project.commits[project.branches[ref]]
        if ref in project.tags:
            return project.commits[project.tags[ref].commit_id]
        ref = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        if ref in project.branches or ref in project.tags:
            return self._resolve(project, ref)
        if ref in project.commits:
            return project.commits[ref]
        if re.fullmatch(r"[0-9a-f]{4,39}", ref):
            found = [commit for sha, commit in project.commits.items() if sha.startswith(ref)]
            if len(found) == 1:
                return found[0]
        return None

    def _create_commit(self, project: Project, params: dict, user: dict, *, push: bool = True) -> Commit:
        branch = params.get("branch")
        if not branch:
            raise _missing("branch")
        message = params.get("commit_message")
        if not message:
            raise _missing("commit_message")
        actions = params.get("actions")
        if actions is None:
            raise _missing("actions")
        if not isinstance(actions, list) or not actions:
            raise ApiError(400, {"error": "actions is empty"})
        if not valid_ref_name(str(branch)):
            raise _bad_request("Branch name is invalid")
        start_branch, start_sha = params.get("start_branch"), params.get("start_sha")
        force = _truthy(params.get("force", False))
        if start_branch and start_sha:
            raise ApiError(400, {"error": "start_branch, start_sha are mutually exclusive"})
        if (start_branch or start_sha) and branch in project.branches and not force and start_branch != branch:
            raise _bad_request(f"A branch called '{branch}' already exists. Switch to that branch in order to make "
                               "changes")
        if start_sha:
            base = project.commits.get(start_sha) or self._resolve(project, start_sha)
            if base is None:
                raise _bad_request(f"Invalid start_sha {start_sha}")
        elif start_branch:
            base = self._branch_head(project, start_branch)
            if base is None:
                raise _bad_request(f"Invalid reference name: {start_branch}")
        else:
            base = self._branch_head(project, branch)
            if base is None and project.branches:
                raise _bad_request("You can only create or edit files when you are on a branch")
        tree = dict(base.tree) if base else {}
        additions = deletions = 0
        for action in actions:
            if not isinstance(action, dict):
                raise ApiError(400, {"error": "actions is invalid"})
            kind = action.get("action")
            path = action.get("file_path")
            if kind not in ("create", "update", "delete", "move", "chmod"):
                raise ApiError(400, {"error": "actions[action] does not have a valid value"})
            if not isinstance(path, str) or not path:
                raise ApiError(400, {"error": "actions[file_path] is missing"})
            if not valid_file_path(path):
                raise _bad_request(f"Your changes could not be committed, because the file path {path!r} is invalid")
            content = None
            if "content" in action and action["content"] is not None:
                content = self._decode_content(action["content"], action.get("encoding", "text"))
            if kind == "create":
                if path in tree:
                    raise _bad_request("A file with this name already exists")
                if any(existing.startswith(path + "/") for existing in tree) or any(
                        p in tree for p in _parents(path)):
                    raise _bad_request("A directory or file with this name already exists")
                tree[path] = Blob(content or b"", bool(action.get("execute_filemode", False)))
                additions += _lines(content or b"")
            elif kind == "update":
                if path not in tree:
                    raise _bad_request("A file with this name doesn't exist")
                if action.get("last_commit_id") and action["last_commit_id"] != self._last_commit(project, base,
                                                                                                  path):
                    raise _bad_request("You are attempting to update a file that has changed since you started "
                                       "editing it.")
                deletions += _lines(tree[path].content)
                tree[path] = Blob(content or b"", tree[path].executable)
                additions += _lines(content or b"")
            elif kind == "delete":
                if path not in tree:
                    raise _bad_request("A file with this name doesn't exist")
                deletions += _lines(tree.pop(path).content)
            elif kind == "move":
                previous = action.get("previous_path")
                if not previous or previous not in tree:
                    raise _bad_request("A file with this name doesn't exist")
                if path in tree:
                    raise _bad_request("A file with this name already exists")
                old = tree.pop(previous)
                tree[path] = Blob(content if content is not None else old.content, old.executable)
            else:  # chmod
                if path not in tree:
                    raise _bad_request("A file with this name doesn't exist")
                tree[path] = Blob(tree[path].content, _truthy(action.get("execute_filemode", False)))
        author_name = params.get("author_name") or user["name"]
        author_email = params.get("author_email") or user["email"]
        parent_ids = [base.id] if base else []
        created = _now()
        digest = hashlib.sha1(json.dumps([parent_ids, sorted((p, b.sha, b.executable) for p, b in tree.items()),
                                          message, author_name, _iso(created), secrets.token_hex(4)]).encode())
        commit = Commit(digest.hexdigest(), parent_ids, tree, str(message), author_name, author_email, created,
                        {"additions": additions, "deletions": deletions, "total": additions + deletions})
        project.commits[commit.id] = commit
        before = project.branches.get(branch, ZERO_SHA)
        project.branches[branch] = commit.id
        if project.default_branch not in project.branches:  # the first branch pushed becomes the default
            project.default_branch = branch
        project.last_activity_at = created
        if push:
            self._push_pipeline(project, branch, commit, user, before_sha=before)
        return commit

    @staticmethod
    def _decode_content(content: Any, encoding: str) -> bytes:
        if not isinstance(content, str):
            raise ApiError(400, {"error": "content is invalid"})
        if encoding == "base64":
            try:
                return base64.b64decode(content, validate=True)
            except ValueError:
                raise _bad_request("Invalid base64 content") from None
        if encoding not in ("text", None):
            raise ApiError(400, {"error": "encoding does not have a valid value"})
        return content.encode("utf-8")

    def _last_commit(self, project: Project, commit: Commit | None, path: str) -> str | None:
        """The most recent commit (first parents) that changed `path`, starting at `commit`."""
        if commit is None or path not in commit.tree:
            return None
        current = commit
        sha = current.tree[path].sha
        while current.parent_ids:
            parent = project.commits[current.parent_ids[0]]
            if path not in parent.tree or parent.tree[path].sha != sha:
                return current.id
            current = parent
        return current.id

    def _create_tag(self, project: Project, params: dict, user: dict) -> Tag:
        name = params.get("tag_name")
        if not name:
            raise _missing("tag_name")
        ref = params.get("ref")
        if not ref:
            raise _missing("ref")
        if not valid_ref_name(str(name)):
            raise _bad_request("Tag name invalid")
        if name in project.tags:
            raise _bad_request(f"Tag {name} already exists")
        commit = self._resolve(project, str(ref))
        if commit is None:
            raise _bad_request(f"Target {ref} is invalid")
        message = params.get("message") or None
        target = commit.id
        created_at = None
        if message is not None:
            created_at = _now()
            target = hashlib.sha1(f"tag {name} {commit.id} {message} {_iso(created_at)}".encode()).hexdigest()
        tag = Tag(str(name), commit.id, message, target, created_at)
        project.tags[tag.name] = tag
        project.last_activity_at = _now()
        self._fire_hooks(project, self._tag_push_body(project, tag.name, tag, user))
        self._push_pipeline(project, tag.name, commit, user, is_tag=True)
        return tag

    def _delete_tag(self, project: Project, name: str, user: dict) -> None:
        if name not in project.tags:
            raise _not_found("Tag")
        tag = project.tags.pop(name)
        self._fire_hooks(project, self._tag_push_body(project, name, tag, user, deleted=True))

    def _update_project(self, project: Project, settings: dict) -> None:
        for key, value in settings.items():
            if key == "name":
                project.name = str(value)
            elif key == "description":
                project.description = str(value or "")
            elif key == "default_branch":
                if value not in project.branches:
                    raise _bad_request({"base": [f"Could not change HEAD: branch '{value}' does not exist"]})
                project.default_branch = value
            elif key == "jobs_enabled":
                project.jobs_enabled = _truthy(value)
            elif key == "builds_access_level":
                project.jobs_enabled = value != "disabled"
            elif key == "ci_config_path":
                project.ci_config_path = str(value) or ".gitlab-ci.yml"
            elif key == "ci_pipeline_variables_minimum_override_role":
                if value not in ("no_one_allowed", "developer", "maintainer", "owner"):
                    raise ApiError(400, {"error": "ci_pipeline_variables_minimum_override_role does not have a "
                                                  "valid value"})
                project.pipeline_variables_role = value
            elif key == "restrict_user_defined_variables":
                if _truthy(value) and project.pipeline_variables_role == "developer":
                    project.pipeline_variables_role = "maintainer"
                elif not _truthy(value):
                    project.pipeline_variables_role = "developer"
            elif key == "visibility":
                if value not in ("private", "internal", "public"):
                    raise ApiError(400, {"error": "visibility does not have a valid value"})
                project.visibility = value

    # --- pipelines ---

    def _predefined(self, project: Project, commit: Commit, ref: str, is_tag: bool, source: str, user: dict,
                    pipeline_id: int, iid: int) -> dict[str, str]:
        title = commit.message.splitlines()[0] if commit.message else ""
        host = urlsplit(self.url)
        variables = {
            "CI": "true", "GITLAB_CI": "true", "CI_SERVER": "yes", "CI_SERVER_NAME": "GitLab",
            "CI_SERVER_VERSION": GITLAB_VERSION, "CI_SERVER_URL": self.url, "CI_SERVER_HOST": host.hostname or "",
            "CI_SERVER_PORT": str(host.port or 80), "CI_SERVER_PROTOCOL": "http", "CI_API_V4_URL": self.api_url,
            "CI_PROJECT_ID": str(project.id), "CI_PROJECT_NAME": project.path, "CI_PROJECT_TITLE": project.name,
            "CI_PROJECT_PATH": project.path_with_namespace, "CI_PROJECT_PATH_SLUG": _slug(project.path_with_namespace),
            "CI_PROJECT_NAMESPACE": project.namespace.full_path,
            "CI_PROJECT_ROOT_NAMESPACE": project.namespace.full_path.split("/")[0],
            "CI_PROJECT_URL": f"{self.url}/{project.path_with_namespace}", "CI_PROJECT_VISIBILITY": project.visibility,
            "CI_PROJECT_DIR": f"/builds/{project.path_with_namespace}", "CI_BUILDS_DIR": "/builds",
            "CI_DEFAULT_BRANCH": project.default_branch or "", "CI_CONFIG_PATH": project.ci_config_path,
            "CI_PIPELINE_ID": str(pipeline_id), "CI_PIPELINE_IID": str(iid), "CI_PIPELINE_SOURCE": source,
            "CI_PIPELINE_URL": f"{self.url}/{project.path_with_namespace}/-/pipelines/{pipeline_id}",
            "CI_COMMIT_SHA": commit.id, "CI_COMMIT_SHORT_SHA": commit.id[:8], "CI_COMMIT_REF_NAME": ref,
            "CI_COMMIT_REF_SLUG": _slug(ref), "CI_COMMIT_MESSAGE": commit.message, "CI_COMMIT_TITLE": title,
            "CI_COMMIT_DESCRIPTION": commit.message[len(title):].lstrip("\n"),
            "CI_COMMIT_TIMESTAMP": commit.created_at.isoformat(timespec="seconds"),
            "CI_COMMIT_AUTHOR": f"{commit.author_name} <{commit.author_email}>", "CI_COMMIT_BEFORE_SHA": ZERO_SHA,
            "GITLAB_USER_ID": str(user["id"]), "GITLAB_USER_LOGIN": user["username"], "GITLAB_USER_NAME": user["name"],
            "GITLAB_USER_EMAIL": user["email"],
        }
        if is_tag:
            variables["CI_COMMIT_TAG"] = ref
            tag = project.tags.get(ref)
            if tag and tag.message:
                variables["CI_COMMIT_TAG_MESSAGE"] = tag.message
        else:
            variables["CI_COMMIT_BRANCH"] = ref
        return variables

    def _create_pipeline(self, project: Project, ref: str, user: dict, *, source: str,
                         variables: list[dict] | None = None, commit: Commit | None = None,
                         is_tag: bool | None = None) -> Pipeline:
        """Plan and create a pipeline; raises ApiError as POST /pipeline answers."""
        if not project.jobs_enabled:
            raise ApiError(403, FORBIDDEN)
        if commit is None:
            if ref in project.branches:
                commit, is_tag = project.commits[project.branches[ref]], False
            elif ref in project.tags:
                commit, is_tag = project.commits[project.tags[ref].commit_id], True
            else:
                raise _bad_request({"base": ["Reference not found"]})
        variables = variables or []
        pipeline_variables: dict[str, str] = {}
        file_types: set[str] = set()
        for item in variables:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise ApiError(400, {"error": "variables is invalid"})
            key = item["key"]
            if not gitlab_ci.VARIABLE_NAME.match(key):
                raise _bad_request({"base": [f"Variable key '{key}' can contain only letters, digits and '_'."]})
            pipeline_variables[key] = str(item.get("value", ""))
            if item.get("variable_type") == "file":
                file_types.add(key)
        pipeline_id = self._next("pipeline")
        iid = project.next_pipeline_iid
        predefined = self._predefined(project, commit, ref, bool(is_tag), source, user, pipeline_id, iid)
        config = commit.tree.get(project.ci_config_path)
        if config is None:
            raise _bad_request({"base": ["Missing CI config file"]})
        try:
            plan = gitlab_ci.plan_pipeline(config.content.decode("utf-8", "replace"), files=set(commit.tree),
                                           variables={**predefined, **pipeline_variables}, ref=ref,
                                           is_tag=bool(is_tag), source=source)
        except gitlab_ci.PipelineFiltered as filtered:
            raise _bad_request({"base": [str(filtered)]}) from None
        except gitlab_ci.CiConfigError as error:
            raise _bad_request({"base": error.errors}) from None
        project.next_pipeline_iid += 1
        pipeline = Pipeline(pipeline_id, iid, project.id, commit.id, ref, bool(is_tag), source,
                            [{"key": key, "value": value, "variable_type": "file" if key in file_types else "env_var"}
                             for key, value in pipeline_variables.items()], plan.stages, user)
        self._pipelines[pipeline.id] = pipeline
        project.pipeline_ids.append(pipeline.id)
        for planned in plan.jobs:
            job = self._new_job(project, pipeline, planned)
            pipeline.job_ids.append(job.id)
        self._advance(pipeline)
        return pipeline

    def _new_job(self, project: Project, pipeline: Pipeline, planned: gitlab_ci.PlannedJob) -> Job:
        job = Job(self._next("job"), project.id, pipeline.id, planned)
        self._jobs[job.id] = job
        return job

    def _push_pipeline(self, project: Project, ref: str, commit: Commit, user: dict, *, is_tag: bool = False,
                       before_sha: str = ZERO_SHA) -> None:
        """What a push does in GitLab: a pipeline when the commit has a CI file and nothing stops it."""
        if not self.push_pipelines or not project.jobs_enabled or project.ci_config_path not in commit.tree:
            return
        if SKIP_CI.search(commit.message):  # GitLab records a skipped pipeline without jobs
            pipeline = Pipeline(self._next("pipeline"), project.next_pipeline_iid, project.id, commit.id, ref, is_tag,
                                "push", [], [], user, status="skipped", before_sha=before_sha)
            project.next_pipeline_iid += 1
            pipeline.finished_at = pipeline.created_at
            self._pipelines[pipeline.id] = pipeline
            project.pipeline_ids.append(pipeline.id)
            return
        try:
            pipeline = self._create_pipeline(project, ref, user, source="push", commit=commit, is_tag=is_tag)
            pipeline.before_sha = before_sha
        except ApiError as error:
            base = error.answer.body.get("message", {}) if isinstance(error.answer.body, dict) else {}
            messages = base.get("base", []) if isinstance(base, dict) else []
            if any("filtered out" in m or "will not run" in m for m in messages):
                return
            # An invalid CI file gives a failed pipeline with its errors, as a push does in GitLab.
            pipeline_id = self._next("pipeline")
            pipeline = Pipeline(pipeline_id, project.next_pipeline_iid, project.id, commit.id, ref, is_tag, "push",
                                [], [], user, status="failed", yaml_errors="; ".join(messages) or str(error))
            project.next_pipeline_iid += 1
            pipeline.finished_at = _now()
            self._pipelines[pipeline.id] = pipeline
            project.pipeline_ids.append(pipeline.id)

    def _current_jobs(self, pipeline: Pipeline) -> list[Job]:
        return [self._jobs[job_id] for job_id in pipeline.job_ids]

    def _advance(self, pipeline: Pipeline) -> None:
        """Move the pipeline's jobs on (created -> pending/skipped/manual, stage by stage) and compose its status."""
        jobs = self._current_jobs(pipeline)
        now = _now()
        if pipeline.canceled:
            for job in jobs:
                if job.status in ACTIVE and job.run is None:
                    job.status, job.finished_at = "canceled", now
        previous_failed = False
        for stage_index in sorted({job.plan.stage_index for job in jobs}):
            stage_jobs = [job for job in jobs if job.plan.stage_index == stage_index]
            for job in stage_jobs:
                if job.status != "created":
                    continue
                when = job.plan.when
                if when == "manual":
                    job.status = "manual"
                elif when == "always" or (when == "on_failure") == previous_failed:
                    job.status, job.queued_at = "pending", now
                else:
                    job.status, job.finished_at = "skipped", now
            if any(job.status in ACTIVE for job in stage_jobs):
                break
            previous_failed = previous_failed or any(
                (job.status == "failed" and not job.plan.allow_failure) or job.status == "canceled"
                for job in stage_jobs)
        status = self._compose(pipeline, jobs)
        if status != pipeline.status:
            pipeline.status = status
            pipeline.updated_at = now
        if status == "running" and pipeline.started_at is None:
            pipeline.started_at = now
        if status in FINISHED and pipeline.finished_at is None:
            pipeline.finished_at = now
        if status not in FINISHED:
            pipeline.finished_at = None
        self._changed.notify_all()

    @staticmethod
    def _compose(pipeline: Pipeline, jobs: list[Job]) -> str:
        statuses = [job.status for job in jobs]
        if not statuses:
            return pipeline.status
        if any(status == "running" for status in statuses):
            return "canceling" if pipeline.canceled else "running"
        if all(status in FINISHED for status in statuses):
            if any(job.status == "failed" and not job.plan.allow_failure for job in jobs):
                return "failed"
            if pipeline.canceled or any(status == "canceled" for status in statuses):
                return "canceled"
            if all(status == "skipped" for status in statuses):
                return "skipped"
            if all(status in ("skipped", "manual") for status in statuses):
                return "manual"
            return "success"
        if any(status in ("success", "failed", "canceled", "skipped") for status in statuses) and any(
                status == "pending" for status in statuses):
            return "running"
        if any(status == "pending" for status in statuses):
            return "pending"
        return "created"

    def _cancel_pipeline(self, pipeline: Pipeline) -> list[JobRun]:
        if pipeline.status in FINISHED:
            return []
        pipeline.canceled = True
        runs = []
        for job in self._current_jobs(pipeline):
            if job.status in ACTIVE:
                runs.extend(self._cancel_job(job, advance=False))
        self._advance(pipeline)
        return runs

    def _cancel_job(self, job: Job, *, advance: bool = True) -> list[JobRun]:
        if job.status not in (*ACTIVE, "manual"):
            return []
        job.status, job.finished_at = "canceled", _now()
        runs = [job.run] if job.run is not None else []
        if advance:
            self._advance(self._pipelines[job.pipeline_id])
        return runs

    def _retry_job(self, job: Job) -> Job:
        if job.status not in ("success", "failed", "canceled", "skipped") or job.retried:
            raise ApiError(403, {"message": "403 Forbidden  - Job is not retryable"})
        pipeline = self._pipelines[job.pipeline_id]
        project = self._projects[job.project_id]
        clone = self._new_job(project, pipeline, job.plan)
        job.retried = True
        pipeline.job_ids[pipeline.job_ids.index(job.id)] = clone.id
        clone.status, clone.queued_at = "pending", _now()
        pipeline.canceled = False
        pipeline.finished_at = None
        self._advance(pipeline)
        return clone

    def _retry_pipeline(self, pipeline: Pipeline) -> None:
        project = self._projects[pipeline.project_id]
        for index, job_id in enumerate(list(pipeline.job_ids)):
            job = self._jobs[job_id]
            if job.status in ("failed", "canceled", "skipped"):
                clone = self._new_job(project, pipeline, job.plan)
                job.retried = True
                pipeline.job_ids[index] = clone.id
        pipeline.canceled = False
        pipeline.finished_at = None
        self._advance(pipeline)

    # --- the runner ---

    def _dispatch(self) -> None:
        """The runner: takes pending jobs (oldest first) while it has free slots, runs each in a worker thread."""
        while not self.stopping.is_set():
            with self._changed:
                self._expire_pending()
                if not self.runner_unavailable:
                    running = sum(1 for job in self._jobs.values() if job.status == "running")
                    for job in sorted(self._jobs.values(), key=lambda item: item.id):
                        if running >= self.runner_concurrency:
                            break
                        if job.status != "pending" or job.run is not None or not self._runner_takes(job):
                            continue
                        self._start(job)
                        running += 1
                self._changed.wait(0.05)

    def _runner_takes(self, job: Job) -> bool:
        if self.runner_tags is None:
            return True
        return set(job.plan.tags) <= self.runner_tags

    def _expire_pending(self) -> None:
        if self.pending_timeout_seconds is None:
            return
        now = _now()
        for job in self._jobs.values():
            if job.status == "pending" and job.queued_at and (
                    now - job.queued_at).total_seconds() > self.pending_timeout_seconds:
                job.status, job.failure_reason, job.finished_at = "failed", "stuck_or_timeout_failure", now
                job.trace = b"ERROR: Job failed (system failure): no runner picked the job up in time\n"
                self._advance(self._pipelines[job.pipeline_id])

    def _start(self, job: Job) -> None:
        pipeline = self._pipelines[job.pipeline_id]
        project = self._projects[job.project_id]
        commit = project.commits[pipeline.sha]
        plan = job.plan
        predefined = self._predefined(project, commit, pipeline.ref, pipeline.tag, pipeline.source, pipeline.user,
                                      pipeline.id, pipeline.iid)
        timeout = plan.timeout_seconds or self.default_job_timeout_seconds
        if self.max_job_seconds is not None:
            timeout = min(timeout, self.max_job_seconds)
        pipeline_vars = {item["key"]: item["value"] for item in pipeline.variables
                         if item["variable_type"] != "file"}
        file_vars = {item["key"]: item["value"] for item in pipeline.variables if item["variable_type"] == "file"}
        image = gitlab_ci.expand(plan.image, {**predefined, **plan.variables, **pipeline_vars}) or "fake-default:latest"
        job.status, job.started_at, job.image, job.timeout_seconds = "running", _now(), image, timeout
        job_vars = {
            "CI_JOB_ID": str(job.id), "CI_JOB_NAME": plan.name, "CI_JOB_NAME_SLUG": _slug(plan.name),
            "CI_JOB_STAGE": plan.stage, "CI_JOB_URL": f"{self.url}/{project.path_with_namespace}/-/jobs/{job.id}",
            "CI_JOB_STARTED_AT": _iso(job.started_at) or "", "CI_JOB_IMAGE": image,
            "CI_JOB_TIMEOUT": str(int(timeout)), "CI_JOB_STATUS": "running", "CI_RUNNER_ID": "1",
            "CI_RUNNER_DESCRIPTION": "fake-gitlab sandbox runner", "CI_RUNNER_TAGS": json.dumps(sorted(
                self.runner_tags or [])), "CI_CONCURRENT_ID": "0", "CI_NODE_TOTAL": "1",
        }
        environment = {**predefined, **job_vars, **plan.variables, **pipeline_vars}
        job.environment = dict(environment)
        dependency_zips = []
        for other_id in pipeline.job_ids:
            other = self._jobs[other_id]
            if other.plan.stage_index < plan.stage_index and other.artifacts_zip and (
                    plan.dependencies is None or other.name in plan.dependencies):
                dependency_zips.append(other.artifacts_zip)
        spec = JobSpec(
            job_id=job.id, name=plan.name, project_path=project.path_with_namespace,
            files={path: (blob.content, blob.executable) for path, blob in commit.tree.items()},
            script=plan.script, before_script=plan.before_script, after_script=plan.after_script,
            variables=environment, file_variables=file_vars, image=image, timeout_seconds=timeout,
            artifact_paths=plan.artifact_paths, artifact_exclude=plan.artifact_exclude,
            artifact_untracked=plan.artifact_untracked, artifact_when=plan.artifact_when,
            dependency_zips=dependency_zips, kernel_env=self.kernel_env, tmpfs_mb=self.tmpfs_mb,
            max_trace_bytes=self.max_trace_bytes, max_artifacts_bytes=self.max_artifacts_bytes,
        )
        job.run = JobRun(spec)
        self._advance(pipeline)
        worker = threading.Thread(target=self._work, args=(job.id,), daemon=True, name=f"fake-gitlab-job-{job.id}")
        self._workers = [thread for thread in self._workers if thread.is_alive()]
        self._workers.append(worker)
        worker.start()

    def _work(self, job_id: int) -> None:
        with self._lock:
            job = self._jobs[job_id]
            run = job.run
            policy = self.image_policy
        assert run is not None
        if policy is not None and not policy(run.spec.image):
            trace = (f"Running with gitlab-runner {GITLAB_VERSION}\nUsing Docker executor with image "
                     f"{run.spec.image} ...\nPulling docker image {run.spec.image} ...\n"
                     f"ERROR: Job failed: failed to pull image \"{run.spec.image}\" with specified policies [always]: "
                     "Error response from daemon: manifest unknown (manager.go:250:0s)\n").encode()
            outcome_status, reason, trace_bytes, artifacts, code = "failed", "image_pull_failure", trace, None, None
        else:
            try:
                outcome = run.run()
                outcome_status, reason, trace_bytes = outcome.status, outcome.failure_reason, outcome.trace
                artifacts, code = outcome.artifacts_zip, outcome.exit_code
            except Exception as error:  # noqa: BLE001 - a bug in the fake must not leave a job running for ever
                outcome_status, reason, artifacts, code = "failed", "runner_system_failure", None, None
                trace_bytes = run.trace() + f"\nERROR: Job failed (system failure): {error!r}\n".encode()
        with self._lock:
            job.run = None
            job.trace = trace_bytes
            job.exit_code = code
            if job.status == "running":  # not cancelled meanwhile
                job.status, job.failure_reason, job.finished_at = outcome_status, reason, _now()
                if artifacts is not None and not self.drop_artifacts:
                    job.artifacts_zip = artifacts
            self._advance(self._pipelines[job.pipeline_id])

    # --- hooks ---

    def _tag_push_body(self, project: Project, name: str, tag: Tag | None, user: dict, *,
                       deleted: bool = False) -> dict:
        web_url = f"{self.url}/{project.path_with_namespace}"
        git_http = f"{web_url}.git"
        git_ssh = f"git@{urlsplit(self.url).hostname}:{project.path_with_namespace}.git"
        project_json = {
            "id": project.id, "name": project.name, "description": project.description, "web_url": web_url,
            "avatar_url": None, "git_ssh_url": git_ssh, "git_http_url": git_http,
            "namespace": project.namespace.name, "visibility_level": {"private": 0, "internal": 10,
                                                                      "public": 20}[project.visibility],
            "path_with_namespace": project.path_with_namespace, "default_branch": project.default_branch,
            "ci_config_path": project.ci_config_path, "homepage": web_url, "url": git_ssh, "ssh_url": git_ssh,
            "http_url": git_http,
        }
        commits = []
        if tag is not None and not deleted:
            commit = project.commits[tag.commit_id]
            commits = [{"id": commit.id, "message": commit.message, "title": commit.message.splitlines()[0],
                        "timestamp": _iso(commit.created_at), "url": f"{web_url}/-/commit/{commit.id}",
                        "author": {"name": commit.author_name, "email": commit.author_email},
                        "added": [], "modified": [], "removed": []}]
        return {
            "object_kind": "tag_push", "event_name": "tag_push",
            "before": tag.target if deleted and tag else ZERO_SHA,
            "after": ZERO_SHA if deleted or tag is None else tag.target,
            "ref": f"refs/tags/{name}", "ref_protected": False,
            "checkout_sha": None if deleted or tag is None else tag.commit_id,
            "message": None if deleted or tag is None else tag.message,
            "user_id": user["id"], "user_name": user["name"], "user_username": user["username"],
            "user_email": "", "user_avatar": None, "project_id": project.id, "project": project_json,
            "commits": commits, "total_commits_count": len(commits), "push_options": {},
            "repository": {"name": project.name, "url": git_ssh, "description": project.description,
                           "homepage": web_url, "git_http_url": git_http, "git_ssh_url": git_ssh,
                           "visibility_level": project_json["visibility_level"]},
        }

    def _fire_hooks(self, project: Project, body: dict) -> None:
        if not self.deliver_hooks:
            return
        for hook in project.hooks.values():
            if not hook.tag_push_events:
                continue
            headers = {"Content-Type": "application/json", "User-Agent": f"GitLab/{GITLAB_VERSION}",
                       "X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Instance": self.url,
                       "X-Gitlab-Webhook-UUID": str(uuid.uuid4()), "X-Gitlab-Event-UUID": str(uuid.uuid4())}
            if hook.token:
                headers["X-Gitlab-Token"] = hook.token
            delivery = {"hook_id": hook.id, "url": hook.url, "event": "Tag Push Hook", "headers": headers,
                        "body": copy.deepcopy(body), "status": None, "error": None, "done": False}
            self._deliveries.append(delivery)
            thread = threading.Thread(target=self._deliver, args=(delivery,), daemon=True)
            self._workers.append(thread)
            thread.start()

    def _deliver(self, delivery: dict) -> None:
        request = urllib.request.Request(delivery["url"], data=json.dumps(delivery["body"]).encode(),
                                         headers=delivery["headers"], method="POST")
        status, error = None, None
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as http_error:
            status = http_error.code
        except (OSError, ValueError) as other:
            error = repr(other)
        with self._lock:
            delivery.update(status=status, error=error, done=True)

    # ================================================================================================================
    # JSON views
    # ================================================================================================================

    def _namespace_json(self, namespace: Namespace) -> dict:
        return {"id": namespace.id, "name": namespace.name, "path": namespace.path, "kind": namespace.kind,
                "full_path": namespace.full_path, "parent_id": namespace.parent_id, "avatar_url": None,
                "web_url": f"{self.url}/{namespace.full_path}"}

    def _project_json(self, project: Project) -> dict:
        web_url = f"{self.url}/{project.path_with_namespace}"
        return {
            "id": project.id, "name": project.name, "path": project.path, "description": project.description,
            "name_with_namespace": f"{project.namespace.name} / {project.name}",
            "path_with_namespace": project.path_with_namespace, "created_at": _iso(project.created_at),
            "default_branch": project.default_branch if project.branches else None,
            "tag_list": [], "topics": [], "visibility": project.visibility, "web_url": web_url,
            "http_url_to_repo": f"{web_url}.git",
            "ssh_url_to_repo": f"git@{urlsplit(self.url).hostname}:{project.path_with_namespace}.git",
            "readme_url": None, "avatar_url": None, "forks_count": 0, "star_count": 0,
            "last_activity_at": _iso(project.last_activity_at), "namespace": self._namespace_json(project.namespace),
            "empty_repo": not project.commits, "archived": False, "jobs_enabled": project.jobs_enabled,
            "builds_access_level": "enabled" if project.jobs_enabled else "disabled",
            "ci_config_path": project.ci_config_path,
            "ci_pipeline_variables_minimum_override_role": project.pipeline_variables_role,
            "restrict_user_defined_variables": project.pipeline_variables_role != "developer",
            "_links": {"self": f"{self.api_url}/projects/{project.id}"},
        }

    def _commit_json(self, project: Project, commit: Commit, *, stats: bool = True) -> dict:
        title = commit.message.splitlines()[0] if commit.message else ""
        data = {
            "id": commit.id, "short_id": commit.id[:8], "title": title, "message": commit.message,
            "created_at": _iso(commit.created_at), "parent_ids": list(commit.parent_ids),
            "author_name": commit.author_name, "author_email": commit.author_email,
            "authored_date": _iso(commit.created_at), "committer_name": commit.author_name,
            "committer_email": commit.author_email, "committed_date": _iso(commit.created_at), "trailers": {},
            "extended_trailers": {}, "web_url": f"{self.url}/{project.path_with_namespace}/-/commit/{commit.id}",
        }
        if stats:
            data["stats"] = dict(commit.stats)
            data["status"] = None
            data["project_id"] = project.id
            pipelines = [self._pipelines[pid] for pid in project.pipeline_ids
                         if pid in self._pipelines and self._pipelines[pid].sha == commit.id]
            data["last_pipeline"] = self._pipeline_json(pipelines[-1]) if pipelines else None
        return data

    def _tag_json(self, project: Project, tag: Tag) -> dict:
        return {"name": tag.name, "message": tag.message, "target": tag.target,
                "commit": self._commit_json(project, project.commits[tag.commit_id], stats=False),
                "release": None, "protected": False, "created_at": _iso(tag.created_at)}

    def _branch_json(self, project: Project, name: str) -> dict:
        return {"name": name, "merged": False, "protected": False, "default": name == project.default_branch,
                "developers_can_push": False, "developers_can_merge": False, "can_push": True,
                "web_url": f"{self.url}/{project.path_with_namespace}/-/tree/{quote(name)}",
                "commit": self._commit_json(project, project.commits[project.branches[name]], stats=False)}

    def _hook_json(self, project: Project, hook: Hook) -> dict:
        return {"id": hook.id, "url": hook.url, "project_id": project.id, "push_events": hook.push_events,
                "tag_push_events": hook.tag_push_events, "issues_events": False, "merge_requests_events": False,
                "pipeline_events": False, "job_events": False, "note_events": False,
                "enable_ssl_verification": hook.enable_ssl_verification, "created_at": _iso(hook.created_at),
                "alert_status": "executable"}

    def _pipeline_json(self, pipeline: Pipeline) -> dict:
        project = self._projects[pipeline.project_id]
        duration = None
        if pipeline.started_at:
            duration = int(((pipeline.finished_at or _now()) - pipeline.started_at).total_seconds())
        return {
            "id": pipeline.id, "iid": pipeline.iid, "project_id": pipeline.project_id, "sha": pipeline.sha,
            "ref": pipeline.ref, "status": pipeline.status, "source": pipeline.source,
            "created_at": _iso(pipeline.created_at), "updated_at": _iso(pipeline.updated_at),
            "web_url": f"{self.url}/{project.path_with_namespace}/-/pipelines/{pipeline.id}",
            "before_sha": pipeline.before_sha, "tag": pipeline.tag, "yaml_errors": pipeline.yaml_errors,
            "user": _user_brief(pipeline.user), "started_at": _iso(pipeline.started_at),
            "finished_at": _iso(pipeline.finished_at), "committed_at": None, "duration": duration,
            "queued_duration": None, "coverage": None, "name": None,
            "detailed_status": {"status": pipeline.status, "text": pipeline.status, "label": pipeline.status,
                                "group": pipeline.status, "icon": f"status_{pipeline.status}",
                                "favicon": f"favicon_status_{pipeline.status}",
                                "details_path": f"/{project.path_with_namespace}/-/pipelines/{pipeline.id}",
                                "has_details": True},
        }

    def _job_json(self, job: Job) -> dict:
        project = self._projects[job.project_id]
        pipeline = self._pipelines[job.pipeline_id]
        commit = project.commits[pipeline.sha]
        duration = queued = None
        if job.started_at:
            duration = ((job.finished_at or _now()) - job.started_at).total_seconds()
            if job.queued_at:
                queued = (job.started_at - job.queued_at).total_seconds()
        artifacts = []
        data: dict[str, Any] = {}
        if job.artifacts_zip is not None:
            artifacts.append({"file_type": "archive", "size": len(job.artifacts_zip), "filename": "artifacts.zip",
                              "file_format": "zip"})
            data["artifacts_file"] = {"filename": "artifacts.zip", "size": len(job.artifacts_zip)}
        if job.trace:
            artifacts.append({"file_type": "trace", "size": len(job.trace), "filename": "job.log",
                              "file_format": None})
        data.update({
            "id": job.id, "status": job.status, "stage": job.plan.stage, "name": job.name, "ref": pipeline.ref,
            "tag": pipeline.tag, "coverage": None, "allow_failure": job.plan.allow_failure,
            "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at), "erased_at": None, "duration": duration,
            "queued_duration": queued, "user": _user_brief(pipeline.user),
            "commit": self._commit_json(project, commit, stats=False),
            "pipeline": {"id": pipeline.id, "iid": pipeline.iid, "project_id": project.id, "ref": pipeline.ref,
                         "sha": pipeline.sha, "status": pipeline.status, "source": pipeline.source,
                         "created_at": _iso(pipeline.created_at), "updated_at": _iso(pipeline.updated_at),
                         "web_url": f"{self.url}/{project.path_with_namespace}/-/pipelines/{pipeline.id}"},
            "web_url": f"{self.url}/{project.path_with_namespace}/-/jobs/{job.id}",
            "project": {"ci_job_token_scope_enabled": False}, "artifacts": artifacts,
            "artifacts_expire_at": None, "tag_list": list(job.plan.tags), "archived": False,
            "runner": {"id": 1, "description": "fake-gitlab sandbox runner", "active": True, "paused": False,
                       "is_shared": True, "runner_type": "instance_type", "name": "fake-gitlab", "online": True,
                       "status": "online"} if job.started_at else None,
        })
        if job.status == "failed":
            data["failure_reason"] = job.failure_reason or "unknown_failure"
        return data

    def _pipeline_view(self, pipeline: Pipeline) -> dict:
        data = self._pipeline_json(pipeline)
        data["variables"] = copy.deepcopy(pipeline.variables)
        data["stages"] = list(pipeline.stages)
        data["job_ids"] = list(pipeline.job_ids)
        data["jobs"] = []
        for job_id in pipeline.job_ids:
            data["jobs"].append(self.job(job_id))
        return data

    # ================================================================================================================
    # the HTTP API
    # ================================================================================================================

    def _authenticate(self, request: RecordedRequest, query: dict) -> Token:
        value = request.headers.get("private-token")
        authorization = request.headers.get("authorization", "")
        if not value and authorization.lower().startswith("bearer "):
            value = authorization[7:].strip()
        if not value:
            value = query.get("private_token") or query.get("access_token")
        with self._lock:
            token = self._tokens.get(value or "")
        if token is None or token.revoked or not secrets.compare_digest(token.value, value or ""):
            raise ApiError(401, {"message": "401 Unauthorized"})
        return token

    def _carry_out(self, request: RecordedRequest) -> Answer:
        parts = urlsplit(request.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            if not parts.path.startswith("/api/v4/"):
                raise _not_found()
            token = self._authenticate(request, query)
            segments = parts.path[len("/api/v4/"):].split("/")
            params = dict(query)
            if request.body:
                params.update(_body_params(request))
            if request.method != "GET" and request.method != "HEAD" and "api" not in token.scopes:
                raise ApiError(403, {"error": "insufficient_scope", "error_description": "The request requires higher "
                                     "privileges than provided by the access token.", "scope": "api"})
            with self._lock:
                answer = self._route(request, segments, params, token)
        except ApiError as error:
            return error.answer
        for run in answer.kill:  # the jobs are already marked canceled; their processes die before the answer
            run.cancel()
        return answer

    def _route(self, request: RecordedRequest, segments: list[str], params: dict, token: Token) -> Answer:
        method = request.method
        head = segments[0]
        if segments == ["version"] or segments == ["metadata"]:
            return Answer(200, {"version": GITLAB_VERSION, "revision": "fake", "kas": {"enabled": False},
                                "enterprise": False})
        if segments == ["user"] and method == "GET":
            return Answer(200, token.user)
        if head == "projects" and len(segments) == 1:
            if method == "GET":
                return self._list_projects(request, params, token)
            if method == "POST":
                return self._post_project(params, token)
        if head == "projects" and len(segments) >= 2:
            project = self._visible_project(unquote(segments[1]), token)
            return self._project_route(request, project, segments[2:], params, token)
        if head in ("namespaces", "groups"):
            return self._namespace_route(request, segments, params, token)
        raise _not_found()

    def _visible_project(self, ident: str, token: Token) -> Project:
        try:
            project = self._project(ident)
        except KeyError:
            raise _not_found("Project") from None
        if not self._may_see(token, project):
            raise _not_found("Project")
        return project

    @staticmethod
    def _may_see(token: Token, project: Project) -> bool:
        return token.projects is None or project.id in token.projects or (
            project.path_with_namespace.lower() in token.projects)

    @staticmethod
    def _require(token: Token, role: str) -> None:
        if token.role < ROLES[role]:
            raise ApiError(403, FORBIDDEN)

    def _list_projects(self, request: RecordedRequest, params: dict, token: Token) -> Answer:
        search = str(params.get("search", "")).lower()
        in_namespaces = _truthy(params.get("search_namespaces", False))
        projects = [project for project in self._projects.values() if self._may_see(token, project)]
        if search:
            projects = [project for project in projects if search in project.name.lower()
                        or search in project.path.lower()
                        or (in_namespaces and search in project.path_with_namespace.lower())]
        order = params.get("order_by", "created_at")
        key = {"id": lambda p: p.id, "name": lambda p: p.name.lower(), "path": lambda p: p.path.lower(),
               "last_activity_at": lambda p: p.last_activity_at}.get(order, lambda p: p.id)
        projects.sort(key=key, reverse=params.get("sort", "desc") == "desc")
        return self._paginate(request, [self._project_json(project) for project in projects], params)

    def _post_project(self, params: dict, token: Token) -> Answer:
        if token.projects is not None:
            raise ApiError(403, FORBIDDEN)
        name, path = params.get("name"), params.get("path")
        if not name and not path:
            raise ApiError(400, {"error": "name, path are missing, at least one parameter must be provided"})
        path = str(path or _slug(str(name)))
        name = str(name or path)
        ident = params.get("namespace_id") or params.get("namespace")
        if ident:
            namespace = self._namespace_by(ident)
            if namespace is None:
                raise _not_found("Namespace")
        else:
            namespace = self._namespace(token.user["username"], kind="user")
        project = self._new_project(namespace, name=name, path=path, description=str(params.get("description") or ""),
                                    user=token.user)
        project.default_branch = params.get("default_branch") or "main"
        self._update_project(project, {key: value for key, value in params.items()
                                       if key in ("jobs_enabled", "builds_access_level", "ci_config_path",
                                                  "ci_pipeline_variables_minimum_override_role", "visibility",
                                                  "restrict_user_defined_variables")})
        if _truthy(params.get("initialize_with_readme", False)):
            self._create_commit(project, {"branch": project.default_branch, "commit_message": "Initial commit",
                                          "actions": [{"action": "create", "file_path": "README.md",
                                                       "content": f"# {name}\n"}]}, token.user)
        return Answer(201, self._project_json(project))

    def _namespace_route(self, request: RecordedRequest, segments: list[str], params: dict, token: Token) -> Answer:
        kind = segments[0]
        if len(segments) == 1 and request.method == "GET":
            search = str(params.get("search", "")).lower()
            items = [ns for ns in self._namespaces.values() if (kind == "namespaces" or ns.kind == "group")
                     and search in ns.full_path.lower()]
            return self._paginate(request, [self._namespace_json(ns) for ns in sorted(items, key=lambda n: n.id)],
                                  params)
        if len(segments) == 1 and request.method == "POST" and kind == "groups":
            if token.projects is not None:
                raise ApiError(403, FORBIDDEN)
            path = str(params.get("path") or "")
            parent = self._namespace_by(params["parent_id"]) if params.get("parent_id") else None
            full_path = f"{parent.full_path}/{path}" if parent else path
            if not PATH_SEGMENT.match(path):
                raise _bad_request({"path": ["is invalid"]})
            if full_path.lower() in self._namespaces:
                raise _bad_request("Failed to save group {:path=>[\"has already been taken\"]}")
            return Answer(201, self._namespace_json(self._namespace(full_path, kind="group")))
        if len(segments) == 2 and request.method == "GET":
            namespace = self._namespace_by(unquote(segments[1]))
            if namespace is None or (kind == "groups" and namespace.kind != "group"):
                raise _not_found("Group" if kind == "groups" else "Namespace")
            return Answer(200, self._namespace_json(namespace))
        raise _not_found()

    def _project_route(self, request: RecordedRequest, project: Project, rest: list[str], params: dict,
                       token: Token) -> Answer:
        method = request.method
        write = method not in ("GET", "HEAD")
        if write:
            self._require(token, "developer")
        if not rest:
            if method == "GET":
                return Answer(200, self._project_json(project))
            if method == "PUT":
                self._require(token, "maintainer")
                self._update_project(project, params)
                return Answer(200, self._project_json(project))
            if method == "DELETE":
                self._require(token, "owner")
                runs = []
                for pipeline_id in project.pipeline_ids:
                    runs.extend(self._cancel_pipeline(self._pipelines[pipeline_id]))
                del self._projects[project.id]
                return Answer(202, {"message": "202 Accepted"}, kill=runs)
            raise _not_found()
        section = rest[0]
        if section == "repository" and len(rest) >= 2:
            return self._repository_route(request, project, rest[1:], params, token)
        if section == "pipeline" and len(rest) == 1 and method == "POST":
            return self._post_pipeline(project, params, token)
        if section == "pipelines":
            return self._pipelines_route(request, project, rest[1:], params, token)
        if section == "jobs":
            return self._jobs_route(request, project, rest[1:], params, token)
        if section == "hooks":
            self._require(token, "maintainer")
            return self._hooks_route(request, project, rest[1:], params)
        raise _not_found()

    # --- repository ---

    def _repository_route(self, request: RecordedRequest, project: Project, rest: list[str], params: dict,
                          token: Token) -> Answer:
        method = request.method
        kind = rest[0]
        if kind == "commits":
            if len(rest) == 1 and method == "POST":
                commit = self._create_commit(project, params, token.user)
                return Answer(201, self._commit_json(project, commit))
            if len(rest) == 1 and method == "GET":
                return self._list_commits(request, project, params)
            if len(rest) == 2 and method == "GET":
                commit = self._resolve(project, unquote(rest[1]))
                if commit is None:
                    raise _not_found("Commit")
                return Answer(200, self._commit_json(project, commit))
        if kind == "files" and len(rest) >= 2:
            path = unquote(rest[1])
            raw = len(rest) == 3 and rest[2] == "raw"
            if len(rest) > 3 or (len(rest) == 3 and not raw):
                raise _not_found()
            return self._file_route(request, project, path, raw, params, token)
        if kind == "tree" and len(rest) == 1 and method == "GET":
            return self._tree(request, project, params)
        if kind.startswith("archive") and len(rest) == 1 and method == "GET":
            return self._archive(project, kind, params)
        if kind == "blobs" and len(rest) in (2, 3) and method == "GET":
            return self._blob(project, rest[1], raw=len(rest) == 3 and rest[2] == "raw")
        if kind == "branches":
            return self._branches_route(request, project, rest[1:], params, token)
        if kind == "tags":
            return self._tags_route(request, project, rest[1:], params, token)
        raise _not_found()

    def _list_commits(self, request: RecordedRequest, project: Project, params: dict) -> Answer:
        ref = params.get("ref_name") or project.default_branch or ""
        commit = self._resolve(project, ref)
        if commit is None:
            return self._paginate(request, [], params) if not project.commits else _raise(_not_found("Commit"))
        path = params.get("path")
        out = []
        current: Commit | None = commit
        while current is not None:
            if not path or self._last_commit(project, current, path) == current.id or (
                    path not in current.tree and current.parent_ids
                    and path in project.commits[current.parent_ids[0]].tree):
                out.append(self._commit_json(project, current, stats=_truthy(params.get("with_stats", False))))
            current = project.commits[current.parent_ids[0]] if current.parent_ids else None
        return self._paginate(request, out, params)

    def _file_route(self, request: RecordedRequest, project: Project, path: str, raw: bool, params: dict,
                    token: Token) -> Answer:
        method = request.method
        if method in ("GET", "HEAD"):
            ref = params.get("ref")
            if not ref:
                if raw:
                    ref = project.default_branch or ""
                else:
                    raise _missing("ref")
            commit = self._resolve(project, str(ref))
            if commit is None:
                raise _not_found("Commit")
            blob = commit.tree.get(path)
            if blob is None:
                raise _not_found("File")
            headers = {
                "X-Gitlab-File-Name": path.rsplit("/", 1)[-1], "X-Gitlab-File-Path": path,
                "X-Gitlab-Size": str(len(blob.content)), "X-Gitlab-Encoding": "base64",
                "X-Gitlab-Blob-Id": blob.sha, "X-Gitlab-Commit-Id": commit.id,
                "X-Gitlab-Last-Commit-Id": self._last_commit(project, commit, path) or commit.id,
                "X-Gitlab-Ref": str(ref), "X-Gitlab-Content-Sha256": hashlib.sha256(blob.content).hexdigest(),
                "X-Gitlab-Execute-Filemode": str(blob.executable).lower(),
            }
            if raw:
                return Answer(200, blob.content, headers, "text/plain; charset=utf-8")
            if method == "HEAD":
                return Answer(200, b"", headers, "application/json")
            return Answer(200, {
                "file_name": headers["X-Gitlab-File-Name"], "file_path": path, "size": len(blob.content),
                "encoding": "base64", "content_sha256": headers["X-Gitlab-Content-Sha256"], "ref": str(ref),
                "blob_id": blob.sha, "commit_id": commit.id, "last_commit_id": headers["X-Gitlab-Last-Commit-Id"],
                "execute_filemode": blob.executable, "content": base64.b64encode(blob.content).decode(),
            }, headers)
        if raw:
            raise _not_found()
        action = {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(method)
        if action is None:
            raise _not_found()
        commit_params = {key: params.get(key) for key in ("branch", "start_branch", "commit_message", "author_name",
                                                           "author_email") if params.get(key) is not None}
        entry = {"action": action, "file_path": path}
        if action != "delete":
            if "content" not in params:
                raise _missing("content")
            entry.update(content=params["content"], encoding=params.get("encoding", "text"))
            if "execute_filemode" in params:
                entry["execute_filemode"] = _truthy(params["execute_filemode"])
        if params.get("last_commit_id"):
            entry["last_commit_id"] = params["last_commit_id"]
        commit = self._create_commit(project, {**commit_params, "actions": [entry]}, token.user)
        if action == "delete":
            return Answer(204, None)
        return Answer(201 if action == "create" else 200, {"file_path": path, "branch": params.get("branch")},
                      {"X-Fake-Commit-Id": commit.id})

    def _tree(self, request: RecordedRequest, project: Project, params: dict) -> Answer:
        if not project.commits:
            return self._paginate(request, [], params)
        ref = params.get("ref") or project.default_branch or ""
        commit = self._resolve(project, str(ref))
        if commit is None:
            raise _not_found("Tree")
        base = str(params.get("path") or "").strip("/")
        recursive = _truthy(params.get("recursive", False))
        prefix = f"{base}/" if base else ""
        if base and not any(path.startswith(prefix) for path in commit.tree):
            raise _not_found("Tree")
        folders: dict[str, str] = {}
        blobs: dict[str, Blob] = {}
        for path, blob in commit.tree.items():
            if not path.startswith(prefix):
                continue
            relative = path[len(prefix):]
            parts = relative.split("/")
            if recursive:
                for depth in range(1, len(parts)):
                    folders[prefix + "/".join(parts[:depth])] = ""
                blobs[path] = blob
            elif len(parts) == 1:
                blobs[path] = blob
            else:
                folders[prefix + parts[0]] = ""
        entries = []
        for folder in sorted(folders):
            inner = sorted((p, b.sha) for p, b in commit.tree.items() if p.startswith(folder + "/"))
            entries.append({"id": hashlib.sha1(json.dumps(inner).encode()).hexdigest(),
                            "name": folder.rsplit("/", 1)[-1], "type": "tree", "path": folder, "mode": "040000"})
        for path in sorted(blobs):
            blob = blobs[path]
            entries.append({"id": blob.sha, "name": path.rsplit("/", 1)[-1], "type": "blob", "path": path,
                            "mode": "100755" if blob.executable else "100644"})
        return self._paginate(request, entries, params)

    def _archive(self, project: Project, kind: str, params: dict) -> Answer:
        fmt = kind[len("archive"):].lstrip(".") or "tar.gz"
        if fmt not in ("tar.gz", "tgz", "tar", "zip", "tar.bz2", "tbz", "tbz2", "tb2", "bz2", "gz"):
            raise _not_found()
        ref = params.get("sha") or project.default_branch or ""
        commit = self._resolve(project, str(ref))
        if commit is None:
            raise _not_found("Ref")
        only = str(params.get("path") or "").strip("/")
        root = f"{project.path}-{ref if ref != commit.id else commit.id}-{commit.id}".replace("/", "-")
        files = {path: blob for path, blob in sorted(commit.tree.items())
                 if not only or path == only or path.startswith(only + "/")}
        buffer = io.BytesIO()
        if fmt == "zip":
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path, blob in files.items():
                    info = zipfile.ZipInfo(f"{root}/{path}")
                    info.external_attr = (0o100755 if blob.executable else 0o100644) << 16
                    archive.writestr(info, blob.content)
            content_type = "application/zip"
        else:
            mode = "w:gz" if fmt in ("tar.gz", "tgz", "gz") else "w:bz2" if "b" in fmt and fmt != "tar" else "w"
            with tarfile.open(fileobj=buffer, mode=mode) as archive:
                for path, blob in files.items():
                    info = tarfile.TarInfo(f"{root}/{path}")
                    info.size = len(blob.content)
                    info.mode = 0o755 if blob.executable else 0o644
                    info.mtime = int(commit.created_at.timestamp())
                    archive.addfile(info, io.BytesIO(blob.content))
            content_type = "application/octet-stream"
        suffix = "zip" if fmt == "zip" else fmt
        return Answer(200, buffer.getvalue(), {"Content-Disposition": f'attachment; filename="{root}.{suffix}"'},
                      content_type)

    def _blob(self, project: Project, sha: str, *, raw: bool) -> Answer:
        for commit in project.commits.values():
            for blob in commit.tree.values():
                if blob.sha == sha:
                    if raw:
                        return Answer(200, blob.content, {}, "text/plain; charset=utf-8")
                    return Answer(200, {"size": len(blob.content), "encoding": "base64", "sha": sha,
                                        "content": base64.b64encode(blob.content).decode()})
        raise _not_found("Blob")

    def _branches_route(self, request: RecordedRequest, project: Project, rest: list[str], params: dict,
                        token: Token) -> Answer:
        method = request.method
        if not rest:
            if method == "GET":
                search = str(params.get("search", ""))
                names = sorted(name for name in project.branches if search in name)
                return self._paginate(request, [self._branch_json(project, name) for name in names], params)
            if method == "POST":
                name, ref = params.get("branch"), params.get("ref")
                if not name:
                    raise _missing("branch")
                if not ref:
                    raise _missing("ref")
                if not valid_ref_name(str(name)):
                    raise _bad_request("Branch name is invalid")
                if name in project.branches:
                    raise _bad_request("Branch already exists")
                commit = self._resolve(project, str(ref))
                if commit is None:
                    raise _bad_request("Invalid reference name: " + str(ref))
                project.branches[str(name)] = commit.id
                return Answer(201, self._branch_json(project, str(name)))
        if len(rest) == 1:
            name = unquote(rest[0])
            if name not in project.branches:
                raise _not_found("Branch")
            if method == "GET":
                return Answer(200, self._branch_json(project, name))
            if method == "DELETE":
                if name == project.default_branch:
                    raise _bad_request("The default branch of a project cannot be deleted.")
                del project.branches[name]
                return Answer(204, None)
        raise _not_found()

    def _tags_route(self, request: RecordedRequest, project: Project, rest: list[str], params: dict,
                    token: Token) -> Answer:
        method = request.method
        if not rest:
            if method == "GET":
                search = str(params.get("search", ""))
                tags = [tag for tag in project.tags.values() if _tag_search(tag.name, search)]
                order = params.get("order_by", "updated")
                if order == "name":
                    tags.sort(key=lambda tag: tag.name)
                else:
                    tags.sort(key=lambda tag: (project.commits[tag.commit_id].created_at, tag.name))
                if params.get("sort", "desc") == "desc":
                    tags.reverse()
                return self._paginate(request, [self._tag_json(project, tag) for tag in tags], params)
            if method == "POST":
                tag = self._create_tag(project, params, token.user)
                return Answer(201, self._tag_json(project, tag))
        if len(rest) == 1:
            name = unquote(rest[0])
            if method == "GET":
                tag = project.tags.get(name)
                if tag is None:
                    raise _not_found("Tag")
                return Answer(200, self._tag_json(project, tag))
            if method == "DELETE":
                self._delete_tag(project, name, token.user)
                return Answer(204, None)
        raise _not_found()

    # --- pipelines and jobs ---

    def _post_pipeline(self, project: Project, params: dict, token: Token) -> Answer:
        ref = params.get("ref")
        if not ref:
            raise _missing("ref")
        variables = params.get("variables") or []
        if not isinstance(variables, list):
            raise ApiError(400, {"error": "variables is invalid"})
        if variables:
            needed = project.pipeline_variables_role
            if needed == "no_one_allowed" or token.role < ROLES[needed]:
                raise _bad_request({"base": ["Insufficient permissions to set pipeline variables"]})
        pipeline = self._create_pipeline(project, str(ref), token.user, source="api", variables=variables)
        return Answer(201, self._pipeline_json(pipeline))

    def _pipeline_of(self, project: Project, raw_id: str) -> Pipeline:
        pipeline = self._pipelines.get(int(raw_id)) if raw_id.isdigit() else None
        if pipeline is None or pipeline.project_id != project.id:
            raise _not_found()
        return pipeline

    def _pipelines_route(self, request: RecordedRequest, project: Project, rest: list[str], params: dict,
                         token: Token) -> Answer:
        method = request.method
        if not rest and method == "GET":
            pipelines = [self._pipelines[pid] for pid in project.pipeline_ids if pid in self._pipelines]
            for key in ("ref", "sha", "status", "source"):
                if params.get(key):
                    pipelines = [p for p in pipelines if getattr(p, key) == params[key]]
            if params.get("scope") == "finished":
                pipelines = [p for p in pipelines if p.status in FINISHED]
            elif params.get("scope") in ("running", "pending"):
                pipelines = [p for p in pipelines if p.status == params["scope"]]
            elif params.get("scope") == "tags":
                pipelines = [p for p in pipelines if p.tag]
            elif params.get("scope") == "branches":
                pipelines = [p for p in pipelines if not p.tag]
            pipelines.sort(key=lambda p: p.id, reverse=params.get("sort", "desc") == "desc")
            return self._paginate(request, [self._pipeline_json(p) for p in pipelines], params)
        if rest == ["latest"] and method == "GET":
            ref = params.get("ref") or project.default_branch
            candidates = [self._pipelines[pid] for pid in project.pipeline_ids
                          if pid in self._pipelines and self._pipelines[pid].ref == ref]
            if not candidates:
                raise _not_found()
            return Answer(200, self._pipeline_json(candidates[-1]))
        if not rest:
            raise _not_found()
        pipeline = self._pipeline_of(project, rest[0])
        tail = rest[1:]
        if not tail:
            if method == "GET":
                return Answer(200, self._pipeline_json(pipeline))
            if method == "DELETE":
                self._require(token, "owner")
                runs = self._cancel_pipeline(pipeline)
                project.pipeline_ids.remove(pipeline.id)
                del self._pipelines[pipeline.id]
                return Answer(204, None, kill=runs)
        if tail == ["jobs"] and method == "GET":
            jobs = [self._jobs[job_id] for job_id in pipeline.job_ids]
            if _truthy(params.get("include_retried", False)):
                jobs = [job for job in self._jobs.values() if job.pipeline_id == pipeline.id]
            jobs = _scope_filter(jobs, params)
            return self._paginate(request, [self._job_json(job) for job in jobs], params)
        if tail == ["variables"] and method == "GET":
            return Answer(200, copy.deepcopy(pipeline.variables))
        if tail == ["cancel"] and method == "POST":
            return Answer(201, self._pipeline_json(pipeline), kill=self._cancel_pipeline(pipeline))
        if tail == ["retry"] and method == "POST":
            self._retry_pipeline(pipeline)
            return Answer(201, self._pipeline_json(pipeline))
        raise _not_found()

    def _jobs_route(self, request: RecordedRequest, project: Project, rest: list[str], params: dict,
                    token: Token) -> Answer:
        method = request.method
        if not rest and method == "GET":
            jobs = sorted((job for job in self._jobs.values() if job.project_id == project.id and not job.retried),
                          key=lambda job: job.id, reverse=True)
            return self._paginate(request, [self._job_json(job) for job in _scope_filter(jobs, params)], params)
        if len(rest) >= 3 and rest[0] == "artifacts" and method == "GET":
            ref, what = unquote(rest[1]), rest[2]
            name = params.get("job")
            if not name:
                raise _missing("job")
            job = self._latest_successful_job(project, ref, str(name))
            if what == "download" and len(rest) == 3:
                return self._artifacts_answer(job)
            if what == "raw" and len(rest) > 3:
                return self._artifact_file(job, "/".join(unquote(part) for part in rest[3:]))
            raise _not_found()
        if not rest or not rest[0].isdigit():
            raise _not_found()
        job = self._jobs.get(int(rest[0]))
        if job is None or job.project_id != project.id:
            raise _not_found("Job")
        tail = rest[1:]
        if not tail and method == "GET":
            return Answer(200, self._job_json(job))
        if tail == ["cancel"] and method == "POST":
            runs = self._cancel_job(job)
            return Answer(201, self._job_json(job), kill=runs)
        if tail == ["retry"] and method == "POST":
            return Answer(201, self._job_json(self._retry_job(job)))
        if tail == ["trace"] and method == "GET":
            run = job.run
            trace = run.trace() if run else job.trace
            return Answer(200, trace, {}, "text/plain; charset=utf-8")
        if tail == ["artifacts"] and method == "GET":
            return self._artifacts_answer(job)
        if tail == ["artifacts"] and method == "DELETE":
            self._require(token, "maintainer")
            job.artifacts_zip = None
            return Answer(204, None)
        if len(tail) >= 2 and tail[0] == "artifacts" and method == "GET":
            return self._artifact_file(job, "/".join(unquote(part) for part in tail[1:]))
        raise _not_found()

    def _latest_successful_job(self, project: Project, ref: str, name: str) -> Job:
        for pipeline_id in reversed(project.pipeline_ids):
            pipeline = self._pipelines.get(pipeline_id)
            if pipeline is None or pipeline.ref != ref or pipeline.status != "success":
                continue
            for job_id in pipeline.job_ids:
                job = self._jobs[job_id]
                if job.name == name and job.status == "success":
                    return job
        raise _not_found()

    @staticmethod
    def _artifacts_answer(job: Job) -> Answer:
        if job.artifacts_zip is None:
            raise _not_found()
        return Answer(200, job.artifacts_zip, {"Content-Disposition": 'attachment; filename="artifacts.zip"'},
                      "application/zip")

    @staticmethod
    def _artifact_file(job: Job, path: str) -> Answer:
        if job.artifacts_zip is None:
            raise _not_found()
        with zipfile.ZipFile(io.BytesIO(job.artifacts_zip)) as archive:
            try:
                content = archive.read(path)
            except KeyError:
                raise _not_found() from None
        return Answer(200, content, {}, "application/octet-stream")

    def _hooks_route(self, request: RecordedRequest, project: Project, rest: list[str], params: dict) -> Answer:
        method = request.method
        if not rest:
            if method == "GET":
                return self._paginate(request, [self._hook_json(project, hook) for hook in project.hooks.values()],
                                      params)
            if method == "POST":
                url = params.get("url")
                if not url:
                    raise _missing("url")
                if not str(url).startswith(("http://", "https://")):
                    raise _bad_request({"url": ["is blocked: Only allowed schemes are http, https"]})
                hook = Hook(self._next("hook"), str(url), str(params.get("token") or ""),
                            _truthy(params.get("push_events", True)), _truthy(params.get("tag_push_events", False)),
                            _truthy(params.get("enable_ssl_verification", True)), _now())
                project.hooks[hook.id] = hook
                return Answer(201, self._hook_json(project, hook))
        if len(rest) == 1 and rest[0].isdigit():
            hook = project.hooks.get(int(rest[0]))
            if hook is None:
                raise _not_found()
            if method == "GET":
                return Answer(200, self._hook_json(project, hook))
            if method == "PUT":
                for key in ("url", "token"):
                    if key in params:
                        setattr(hook, key, str(params[key] or ""))
                for key in ("push_events", "tag_push_events", "enable_ssl_verification"):
                    if key in params:
                        setattr(hook, key, _truthy(params[key]))
                return Answer(200, self._hook_json(project, hook))
            if method == "DELETE":
                del project.hooks[hook.id]
                return Answer(204, None)
        raise _not_found()

    # --- pagination ---

    def _paginate(self, request: RecordedRequest, items: list, params: dict) -> Answer:
        try:
            page = max(int(params.get("page", 1)), 1)
            per_page = min(max(int(params.get("per_page", 20)), 1), 100)
        except ValueError:
            raise ApiError(400, {"error": "page is invalid"}) from None
        total = len(items)
        pages = max((total + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page:page * per_page]
        parts = urlsplit(request.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}

        def link(number: int) -> str:
            return f"{self.url}{parts.path}?{urlencode({**query, 'page': number, 'per_page': per_page})}"

        links = []
        if page < pages:
            links.append(f'<{link(page + 1)}>; rel="next"')
        if page > 1:
            links.append(f'<{link(page - 1)}>; rel="prev"')
        links.append(f'<{link(1)}>; rel="first"')
        links.append(f'<{link(pages)}>; rel="last"')
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(total),
                   "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else "", "Link": ", ".join(links)}
        return Answer(200, chunk, headers)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


# --- small helpers -------------------------------------------------------------------------------------------------


def _default_kernel_env() -> Path:
    """The environment of settings.RUNNER_KERNEL_PYTHON when Django is configured, else var/kernel-env here."""
    try:
        from django.conf import settings

        if settings.configured and getattr(settings, "RUNNER_KERNEL_PYTHON", ""):
            return Path(settings.RUNNER_KERNEL_PYTHON).parent.parent  # .../bin/python -> the environment
    except ImportError:
        pass
    return DEFAULT_KERNEL_ENV


def _raise(error: Exception):
    raise error


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(1, len(parts))]


def _lines(content: bytes) -> int:
    return content.count(b"\n") + (1 if content and not content.endswith(b"\n") else 0)


def _zip_names(blob: bytes | None) -> list[str]:
    if blob is None:
        return []
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return [name for name in archive.namelist() if not name.endswith("/")]


def _user_brief(user: dict) -> dict:
    return {key: user[key] for key in ("id", "username", "name", "state", "avatar_url", "web_url")}


def _tag_search(name: str, search: str) -> bool:
    if not search:
        return True
    if search.startswith("^"):
        return name.startswith(search[1:])
    if search.endswith("$"):
        return name.endswith(search[:-1])
    return search in name


def _scope_filter(jobs: list[Job], params: dict) -> list[Job]:
    scope = params.get("scope") or params.get("scope[]")
    if not scope:
        return jobs
    scopes = set(scope) if isinstance(scope, list) else {scope}
    return [job for job in jobs if job.status in scopes]


def _body_params(request: RecordedRequest) -> dict:
    content_type = request.headers.get("content-type", "")
    if "application/json" in content_type:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise ApiError(400, {"error": "The request body is not valid JSON"}) from None
        if not isinstance(data, dict):
            raise ApiError(400, {"error": "The request body must be a JSON object"})
        return data
    if "application/x-www-form-urlencoded" in content_type:
        return {key: values[-1] for key, values in parse_qs(request.body.decode("utf-8", "replace"),
                                                            keep_blank_values=True).items()}
    raise ApiError(415, {"error": "The provided content-type is not supported."})


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    request_queue_size = 64
    block_on_close = True
    owner: FakeGitLab

    def handle_error(self, request, client_address) -> None:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = HANDLER_SOCKET_TIMEOUT
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format, *args) -> None:
        pass

    def _serve(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                  self.rfile.read(length) if length else b"")
        owner._record(request)
        self.close_connection = True
        fault = owner._take_fault(request.method, request.path)
        request.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "hang":
            owner.stopping.wait(fault.seconds)
            return
        if fault is not None:
            reason = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
                      503: "Service Unavailable", 504: "Gateway Timeout"}.get(fault.status, "Error")
            answer = Answer(fault.status, {"message": f"{fault.status} {reason}"}, fault.headers)
        else:
            try:
                answer = owner._carry_out(request)
            except Exception as error:  # noqa: BLE001 - a fake's bug is a 500 with its text, not a hung client
                answer = Answer(500, {"message": f"500 Internal Server Error (fake: {error!r})"})
        request.status = answer.status
        self._send(answer, head=request.method == "HEAD")

    def _send(self, answer: Answer, *, head: bool) -> None:
        if isinstance(answer.body, bytes):
            body, content_type = answer.body, answer.content_type or "application/octet-stream"
        elif answer.body is None:
            body, content_type = b"", None
        else:
            body, content_type = json.dumps(answer.body).encode(), answer.content_type or "application/json"
        self.send_response(answer.status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)
