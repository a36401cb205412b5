"""A fake GitLab (REST API v4) over plain HTTP on 127.0.0.1, for tests, whose CI pipelines really run.

It serves what nbarchive calls through python-gitlab (repository/integrations/gitlab.py), answered as GitLab
answers: status codes, JSON bodies, error bodies ({"message": ...} / {"error": ...}) and pagination headers
(Link, X-Page, X-Total, ...). Authentication is `PRIVATE-TOKEN: <token>`; a missing or wrong token is 401
{"message": "401 Unauthorized"} everywhere. The endpoints, under /api/v4 (":id" is a number or an encoded path):

    GET  /namespaces/:id                          POST /projects            GET /projects/:id
    POST /projects/:id/repository/commits         GET  /projects/:id/repository/commits/:ref
    GET  /projects/:id/repository/tree            GET  /projects/:id/repository/files/:path/raw
    POST /projects/:id/repository/tags            GET  /projects/:id/repository/tags/:name
    POST /projects/:id/pipeline                   GET  /projects/:id/pipelines/:pipeline_id
    GET  /projects/:id/pipelines/:id/jobs         POST /projects/:id/pipelines/:pipeline_id/cancel
    GET  /projects/:id/jobs/:job_id               GET  /projects/:id/jobs/:job_id/{artifacts,trace}
    POST /projects/:id/hooks

- Commits take create/update/delete actions (text or base64), on `branch`, started from `start_branch`. Refs
  are branch names, tag names, or full or abbreviated shas. Tags are lightweight or annotated (`message`).
- A commit or a tag created through the API or the seeding helpers starts a "push" pipeline when the project
  has jobs enabled and a CI file at that commit; "[skip ci]" in the commit message records a "skipped" pipeline
  without jobs, as GitLab does (`push_pipelines = False` turns push pipelines off). POST /pipeline reads the CI
  file at the ref (see gitlab_ci.py for the part of the CI language understood).
- Jobs go created -> pending -> running -> success | failed | canceled, stage after stage (a failed stage skips
  the next); the pipeline's status follows its jobs. Jobs REALLY RUN, in a bubblewrap sandbox on this machine
  (gitlab_job_sandbox.py), in their `image:` pulled by digest and unpacked as the image runner does it
  (`images = "pull"`, the default; a pull that fails fails the job with `image_pull_failure`), or, for tests
  that ask for it with `images = "kernel-env"`, in the local kernel environment whatever the image
  (gitlab_job_roots.py). The trace is live while the job runs; artifacts are a zip, 404 when there are none.
- Tag pushes (tags created or deleted through the API or the helpers) are POSTed, from a thread, to the
  project's hooks with tag_push_events, with X-Gitlab-Event and X-Gitlab-Token (see `hook_deliveries`);
  `tag_push_event(project, tag)` builds the body without sending it.

Switches for tests: the faults of LoopbackServer (`fail_next(n, status, path_contains=..., method=...)`,
`hang(...)`), `runner_unavailable = True` (jobs stay pending), `drop_artifacts = True` (jobs succeed but
upload nothing), `max_job_seconds` (the runner's maximum timeout: caps every job's), `images` and `image_cache`
(an ImageCache to pull into; by default one of the fake's own in a temporary folder). Seeding: `create_group`,
`create_project`, `commit`, `create_tag`, `delete_tag`, `set_project`. Introspection: `requests`, `project()`,
`files_at()`, `tags()`, `pipelines()`, `pipeline()`, `job()`, `wait_for_pipeline()`, `hook_deliveries`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self
from urllib.parse import unquote, urlencode, urlsplit

from tests.fakes import gitlab_ci
from tests.fakes.gitlab_job_roots import DEFAULT_KERNEL_ENV, IMAGE_SOURCES, PULL, FakeRunnerImageCache, sandbox_problem
from tests.fakes.gitlab_job_sandbox import JobRun, JobSpec
from tests.fakes.loopback import REASONS, Exchange, Fault, LoopbackServer, Request, Response, json_response

GITLAB_VERSION = "17.5.0-fake"
ZERO_SHA = "0" * 40
CI_FILE = ".gitlab-ci.yml"
ACTIVE = ("created", "pending", "running")
FINISHED = ("success", "failed", "canceled", "skipped")
DEFAULT_JOB_TIMEOUT_SECONDS = 3600.0  # a project's default
RUNNER_CONCURRENCY = 2
PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SKIP_CI = re.compile(r"\[(?:skip ci|ci skip)\]", re.IGNORECASE)
ADMIN = {"id": 1, "username": "root", "name": "Administrator", "state": "active", "email": "root@fake-gitlab.test"}


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def _blob_sha(content: bytes) -> str:
    """The git object id of a blob, as GitLab's tree lists it."""
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


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


class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(f"{status}: {body}")
        self.response = json_response(status, body)


def _not_found(what: str = "") -> ApiError:
    return ApiError(404, {"message": f"404 {what} Not Found"} if what else {"error": "404 Not Found"})


def _bad_request(message: Any) -> ApiError:
    return ApiError(400, {"message": message})


def _missing(name: str) -> ApiError:
    return ApiError(400, {"error": f"{name} is missing"})


# --- the model -----------------------------------------------------------------------------------------------------


@dataclass
class Commit:
    id: str
    parent_ids: list[str]
    tree: dict[str, bytes]
    message: str
    created_at: datetime


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
    default_branch: str = "main"
    visibility: str = "private"
    jobs_enabled: bool = True
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, Tag] = field(default_factory=dict)
    hooks: dict[int, Hook] = field(default_factory=dict)
    pipeline_ids: list[int] = field(default_factory=list)

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
    run: JobRun | None = None
    timeout_seconds: float = DEFAULT_JOB_TIMEOUT_SECONDS
    environment: dict[str, str] = field(default_factory=dict)  # the variables the job ran with


@dataclass
class Pipeline:
    id: int
    iid: int
    project_id: int
    sha: str
    ref: str
    tag: bool
    source: str
    stages: list[str]
    status: str = "created"
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    job_ids: list[int] = field(default_factory=list)
    canceled: bool = False
    yaml_errors: str | None = None


# --- the server ----------------------------------------------------------------------------------------------------


class FakeGitLab(LoopbackServer):
    """GitLab's REST API v4 at `url` + /api/v4. `with FakeGitLab() as server:` or start()/stop().

    `token` is the token of the administrator `root`, who reaches every project.
    """

    def __init__(self, *, token: str = "glpat-fake-admin-token", host: str = "127.0.0.1", port: int = 0,
                 kernel_env: Path | str | None = None, max_job_seconds: float | None = None,
                 push_pipelines: bool = True):
        super().__init__(host=host, port=port)
        self.token = token
        self.kernel_env = Path(kernel_env) if kernel_env else _default_kernel_env()
        # switches (plain attributes: set them at any time)
        self.max_job_seconds = max_job_seconds
        self.runner_unavailable = False
        self.drop_artifacts = False
        self.push_pipelines = push_pipelines
        self.job_user = "root"  # "root" (Docker's default) or "user" (an unprivileged uid, as docker-stacks' jovyan)
        self.images = PULL  # or KERNEL_ENV: every image maps to the kernel environment (tests that ask for it)
        self.image_cache = None  # an ImageCache for the pulls; None: the fake's own, removed by stop()
        self._own_image_cache = FakeRunnerImageCache()

        self._changed = threading.Condition(self._lock)
        self._ids = {"namespace": 1, "project": 41, "pipeline": 500, "job": 9000, "hook": 1}
        self._namespaces: dict[str, Namespace] = {}
        self._projects: dict[int, Project] = {}
        self._pipelines: dict[int, Pipeline] = {}
        self._jobs: dict[int, Job] = {}
        self._deliveries: list[dict] = []
        self._workers: list[threading.Thread] = []
        self._namespace(ADMIN["username"], kind="user")
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True, name="fake-gitlab-runner")

    @property
    def url(self) -> str:
        """The instance's URL, as given to gitlab.Gitlab() (the API is under /api/v4)."""
        return self.base_url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    def start(self) -> Self:
        super().start()
        self._dispatcher.start()
        return self

    def stop(self) -> None:
        """Cancel every job (killing its processes), stop listening, join the threads. Safe to call twice."""
        self.stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._dispatcher.is_alive():
            self._dispatcher.join(timeout=5)  # no job starts after this
        with self._lock:
            runs = [job.run for job in self._jobs.values() if job.run is not None]
        for run in runs:
            run.cancel()
        super().stop()
        for worker in list(self._workers):
            worker.join(timeout=10)
        self._own_image_cache.remove()

    def sandbox_problem(self) -> str | None:
        """Why jobs cannot run here (no bwrap; no skopeo/umoci to pull images, or no kernel environment), or None."""
        if self.images not in IMAGE_SOURCES:
            return f"images must be one of {', '.join(IMAGE_SOURCES)}, not {self.images!r}"
        return sandbox_problem(self.images, self.kernel_env)

    def fault_response(self, fault: Fault) -> Response:
        message = f"{fault.status} {REASONS.get(fault.status, 'Error')}"
        return json_response(fault.status, {"message": message}, headers=fault.headers)

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
            project = self._new_project(self._namespace(namespace_path, kind="group"), name=path, path=path,
                                        description=description)
            project.jobs_enabled = jobs_enabled
            project.default_branch = default_branch
        if files:
            self.commit(project.id, files, branch=default_branch, message=message)
        return self.project(project.id)

    def commit(self, project: int | str, files: dict[str, bytes | str], *, branch: str | None = None,
               message: str = "Update files", start_branch: str | None = None) -> str:
        """Commit as a push would (a push pipeline may start): `files` maps paths to content. Returns the sha."""
        with self._lock:
            project_obj = self._project(project)
            branch = branch or project_obj.default_branch
            head = self._branch_head(project_obj, start_branch or branch)
            actions = [{"action": "update" if head and path in head.tree else "create", "file_path": path,
                        "encoding": "base64", "content": base64.b64encode(
                            content.encode() if isinstance(content, str) else content).decode()}
                       for path, content in files.items()]
            params = {"branch": branch, "commit_message": message, "actions": actions}
            if start_branch:
                params["start_branch"] = start_branch
            return self._create_commit(project_obj, params).id

    def create_tag(self, project: int | str, name: str, ref: str, message: str | None = None) -> dict:
        """Create a tag as `git push` of a tag would: hooks fire, a tag pipeline may start."""
        with self._lock:
            project_obj = self._project(project)
            return self._tag_json(project_obj, self._create_tag(project_obj, {"tag_name": name, "ref": ref,
                                                                               "message": message}))

    def delete_tag(self, project: int | str, name: str) -> None:
        with self._lock:
            project_obj = self._project(project)
            tag = project_obj.tags.pop(name)
            self._fire_hooks(project_obj, self._tag_push_body(project_obj, name, tag, deleted=True))

    def set_project(self, project: int | str, **settings: Any) -> dict:
        """Change settings as PUT /projects/:id does (visibility, builds_access_level)."""
        with self._lock:
            project_obj = self._project(project)
            self._update_project(project_obj, settings)
            return self._project_json(project_obj)

    # --- introspection ---

    @property
    def hook_deliveries(self) -> list[dict]:
        """Each delivery: hook_id, url, event, headers, body (dict), status (int or None), error (str or None)."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def project(self, project: int | str) -> dict | None:
        """The project as the API shows it; None if missing."""
        with self._lock:
            try:
                return self._project_json(self._project(project))
            except KeyError:
                return None

    def files_at(self, project: int | str, ref: str | None = None) -> dict[str, bytes]:
        """Every file of the repository at `ref` (default branch by default): path -> content."""
        with self._lock:
            project_obj = self._project(project)
            commit = self._resolve(project_obj, ref or project_obj.default_branch)
            if commit is None:
                raise KeyError(f"no ref {ref!r} in {project_obj.path_with_namespace}")
            return dict(sorted(commit.tree.items()))

    def tags(self, project: int | str) -> dict[str, dict]:
        """name -> {name, commit_sha, message, target, annotated}."""
        with self._lock:
            return {name: {"name": name, "commit_sha": tag.commit_id, "message": tag.message, "target": tag.target,
                           "annotated": tag.message is not None}
                    for name, tag in sorted(self._project(project).tags.items())}

    def pipelines(self, project: int | str) -> list[dict]:
        """Every pipeline of the project, oldest first, each with its jobs (see `pipeline()`)."""
        with self._lock:
            return [self.pipeline(pipeline_id) for pipeline_id in self._project(project).pipeline_ids]

    def pipeline(self, pipeline_id: int) -> dict:
        """The pipeline as the API shows it, plus its `jobs` (see `job()`)."""
        with self._lock:
            pipeline = self._pipelines[pipeline_id]
            return {**self._pipeline_json(pipeline), "jobs": [self.job(job_id) for job_id in pipeline.job_ids]}

    def job(self, job_id: int) -> dict:
        """The job as the API shows it, plus image, timeout_seconds, environment (the variables it ran with) and
        trace (str)."""
        with self._lock:
            job = self._jobs[job_id]
            return {**self._job_json(job), "image": job.plan.image, "timeout_seconds": job.timeout_seconds,
                    "environment": dict(job.environment),
                    "trace": (job.run.trace() if job.run else job.trace).decode("utf-8", "replace")}

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

    def tag_push_event(self, project: int | str, tag: str, *, deleted: bool = False) -> dict:
        """The JSON body GitLab POSTs for a Tag Push Hook (headers: X-Gitlab-Event: Tag Push Hook, X-Gitlab-Token)."""
        with self._lock:
            project_obj = self._project(project)
            tag_obj = project_obj.tags.get(tag)
            if tag_obj is None and not deleted:
                raise KeyError(f"no tag {tag!r} in {project_obj.path_with_namespace}")
            return self._tag_push_body(project_obj, tag, tag_obj, deleted=deleted)

    # ================================================================================================================
    # the model (call with the lock held)
    # ================================================================================================================

    def _next(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _namespace(self, full_path: str, *, kind: str) -> Namespace:
        existing = self._namespaces.get(full_path.lower())
        if existing:
            return existing
        parent_path, _, name = full_path.rpartition("/")
        parent = self._namespace(parent_path, kind="group") if parent_path else None
        if not PATH_SEGMENT.match(name):
            raise ValueError(f"invalid namespace path {full_path!r}")
        namespace = Namespace(self._next("namespace"), full_path, kind, parent.id if parent else None)
        self._namespaces[full_path.lower()] = namespace
        return namespace

    def _new_project(self, namespace: Namespace, *, name: str, path: str, description: str) -> Project:
        if not PATH_SEGMENT.match(path) or path.endswith((".git", ".atom", ".")):
            raise _bad_request({"path": [("can contain only letters, digits, '_', '-' and '.'. Cannot start with '-', "
                                          "end in '.', '.git' or '.atom'.")]})
        if any(p.namespace.id == namespace.id and p.path.lower() == path.lower() for p in self._projects.values()):
            raise _bad_request({"path": ["has already been taken"], "name": ["has already been taken"]})
        project = Project(self._next("project"), name, path, namespace, description, _now())
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

    def _update_project(self, project: Project, settings: dict) -> None:
        for key, value in settings.items():
            if key == "builds_access_level":
                project.jobs_enabled = value != "disabled"
            elif key == "visibility":
                if value not in ("private", "internal", "public"):
                    raise ApiError(400, {"error": "visibility does not have a valid value"})
                project.visibility = value

    def _branch_head(self, project: Project, branch: str) -> Commit | None:
        sha = project.branches.get(branch)
        return project.commits[sha] if sha else None

    def _resolve(self, project: Project, ref: str) -> Commit | None:
        """A branch, a tag, or a full or abbreviated (4+) sha."""
        if ref in project.branches:
            return project.commits[project.branches[ref]]
        if ref in project.tags:
            return project.commits[project.tags[ref].commit_id]
        if ref in project.commits:
            return project.commits[ref]
        if re.fullmatch(r"[0-9a-f]{4,39}", ref):
            found = [commit for sha, commit in project.commits.items() if sha.startswith(ref)]
            if len(found) == 1:
                return found[0]
        return None

    def _create_commit(self, project: Project, params: dict) -> Commit:
        branch, message, actions = params.get("branch"), params.get("commit_message"), params.get("actions")
        for name, value in (("branch", branch), ("commit_message", message), ("actions", actions)):
            if value is None or value == "":
                raise _missing(name)
        if not isinstance(actions, list) or not actions:
            raise ApiError(400, {"error": "actions is empty"})
        if not valid_ref_name(str(branch)):
            raise _bad_request("Branch name is invalid")
        start_branch = params.get("start_branch")
        if start_branch and branch in project.branches and start_branch != branch:
            raise _bad_request(f"A branch called '{branch}' already exists. Switch to that branch in order to make "
                               "changes")
        if start_branch:
            base = self._branch_head(project, start_branch)
            if base is None:
                raise _bad_request(f"Invalid reference name: {start_branch}")
        else:
            base = self._branch_head(project, branch)
            if base is None and project.branches:
                raise _bad_request("You can only create or edit files when you are on a branch")
        tree = dict(base.tree) if base else {}
        for action in actions:
            kind, path = (action.get("action"), action.get("file_path")) if isinstance(action, dict) else (None, None)
            if kind not in ("create", "update", "delete"):
                raise ApiError(400, {"error": "actions[action] does not have a valid value"})
            if not isinstance(path, str) or not path:
                raise ApiError(400, {"error": "actions[file_path] is missing"})
            if not valid_file_path(path):
                raise _bad_request(f"Your changes could not be committed, because the file path {path!r} is invalid")
            if kind == "create" and (path in tree or any(existing.startswith(path + "/") for existing in tree)):
                raise _bad_request("A file with this name already exists")
            if kind != "create" and path not in tree:
                raise _bad_request("A file with this name doesn't exist")
            if kind == "delete":
                del tree[path]
            else:
                tree[path] = _decode_content(action.get("content") or "", action.get("encoding") or "text")
        parent_ids = [base.id] if base else []
        created = _now()
        digest = hashlib.sha1(json.dumps([parent_ids, sorted((p, _blob_sha(c)) for p, c in tree.items()), message,
                                          _iso(created), secrets.token_hex(4)]).encode())
        commit = Commit(digest.hexdigest(), parent_ids, tree, str(message), created)
        project.commits[commit.id] = commit
        project.branches[branch] = commit.id
        if project.default_branch not in project.branches:  # the first branch pushed becomes the default
            project.default_branch = branch
        self._push_pipeline(project, branch, commit, is_tag=False)
        return commit

    def _create_tag(self, project: Project, params: dict) -> Tag:
        name, ref = params.get("tag_name"), params.get("ref")
        if not name:
            raise _missing("tag_name")
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
        target, created_at = commit.id, None
        if message is not None:
            created_at = _now()
            target = hashlib.sha1(f"tag {name} {commit.id} {message} {_iso(created_at)}".encode()).hexdigest()
        tag = Tag(str(name), commit.id, message, target, created_at)
        project.tags[tag.name] = tag
        self._fire_hooks(project, self._tag_push_body(project, tag.name, tag))
        self._push_pipeline(project, tag.name, commit, is_tag=True)
        return tag

    # --- pipelines ---

    def _create_pipeline(self, project: Project, ref: str, *, source: str, commit: Commit | None = None,
                         is_tag: bool = False) -> Pipeline:
        """Plan and create a pipeline; raises ApiError as POST /pipeline answers."""
        if not project.jobs_enabled:
            raise ApiError(403, {"message": "403 Forbidden"})
        if commit is None:
            if ref in project.branches:
                commit = self._branch_head(project, ref)
            elif ref in project.tags:
                commit, is_tag = project.commits[project.tags[ref].commit_id], True
            else:
                raise _bad_request({"base": ["Reference not found"]})
        config = commit.tree.get(CI_FILE)
        if config is None:
            raise _bad_request({"base": ["Missing CI config file"]})
        try:
            plan = gitlab_ci.plan_pipeline(config.decode("utf-8", "replace"))
        except gitlab_ci.CiConfigError as error:
            raise _bad_request({"base": error.errors}) from None
        pipeline = self._add_pipeline(project, commit, ref, is_tag, source, plan.stages)
        for planned in plan.jobs:
            job = Job(self._next("job"), project.id, pipeline.id, planned)
            self._jobs[job.id] = job
            pipeline.job_ids.append(job.id)
        self._advance(pipeline)
        return pipeline

    def _add_pipeline(self, project: Project, commit: Commit, ref: str, is_tag: bool, source: str,
                      stages: list[str], **fields: Any) -> Pipeline:
        pipeline = Pipeline(self._next("pipeline"), len(project.pipeline_ids) + 1, project.id, commit.id, ref, is_tag,
                            source, stages, **fields)
        self._pipelines[pipeline.id] = pipeline
        project.pipeline_ids.append(pipeline.id)
        return pipeline

    def _push_pipeline(self, project: Project, ref: str, commit: Commit, *, is_tag: bool) -> None:
        """What a push does in GitLab: a pipeline when the commit has a CI file and nothing stops it."""
        if not self.push_pipelines or not project.jobs_enabled or CI_FILE not in commit.tree:
            return
        if SKIP_CI.search(commit.message):  # GitLab records a skipped pipeline without jobs
            self._add_pipeline(project, commit, ref, is_tag, "push", [], status="skipped", finished_at=_now())
            return
        try:
            self._create_pipeline(project, ref, source="push", commit=commit, is_tag=is_tag)
        except ApiError as error:  # an invalid CI file gives a failed pipeline with its errors, as a push does
            errors = json.loads(error.response.body)["message"]["base"]
            self._add_pipeline(project, commit, ref, is_tag, "push", [], status="failed", finished_at=_now(),
                               yaml_errors="; ".join(errors))

    def _advance(self, pipeline: Pipeline) -> None:
        """Move the pipeline's jobs on (created -> pending or skipped, stage by stage) and compose its status."""
        jobs = [self._jobs[job_id] for job_id in pipeline.job_ids]
        now = _now()
        if pipeline.canceled:
            for job in jobs:
                if job.status in ACTIVE and job.run is None:
                    job.status, job.finished_at = "canceled", now
        failed_before = False
        for stage_index in sorted({job.plan.stage_index for job in jobs}):
            stage_jobs = [job for job in jobs if job.plan.stage_index == stage_index]
            for job in stage_jobs:
                if job.status == "created":
                    job.status, job.queued_at = ("skipped", None) if failed_before else ("pending", now)
                    job.finished_at = now if failed_before else None
            if any(job.status in ACTIVE for job in stage_jobs):
                break
            failed_before = failed_before or any(job.status in ("failed", "canceled") for job in stage_jobs)
        status = _composite_status(pipeline, [job.status for job in jobs])
        if status != pipeline.status:
            pipeline.status, pipeline.updated_at = status, now
        if status == "running" and pipeline.started_at is None:
            pipeline.started_at = now
        pipeline.finished_at = (pipeline.finished_at or now) if status in FINISHED else None
        self._changed.notify_all()

    def _cancel_pipeline(self, pipeline: Pipeline) -> None:
        """Cancel the active jobs; their processes are killed before this returns."""
        if pipeline.status in FINISHED:
            return
        pipeline.canceled = True
        for job in (self._jobs[job_id] for job_id in pipeline.job_ids):
            if job.status in ACTIVE:
                job.status, job.finished_at = "canceled", _now()
                if job.run is not None:
                    job.run.cancel()
        self._advance(pipeline)

    # --- the runner ---

    def _dispatch(self) -> None:
        """The runner: takes pending jobs (oldest first) while it has free slots, runs each in a worker thread."""
        while not self.stopping.is_set():
            with self._changed:
                if not self.runner_unavailable:
                    running = sum(1 for job in self._jobs.values() if job.status == "running")
                    for job in sorted(self._jobs.values(), key=lambda item: item.id):
                        if running >= RUNNER_CONCURRENCY:
                            break
                        if job.status == "pending" and job.run is None:
                            self._start(job)
                            running += 1
                self._changed.wait(0.05)

    def _start(self, job: Job) -> None:
        pipeline = self._pipelines[job.pipeline_id]
        project = self._projects[job.project_id]
        commit = project.commits[pipeline.sha]
        timeout = job.plan.timeout_seconds or DEFAULT_JOB_TIMEOUT_SECONDS
        if self.max_job_seconds is not None:
            timeout = min(timeout, self.max_job_seconds)
        job.status, job.started_at, job.timeout_seconds = "running", _now(), timeout
        job.environment = {**self._predefined(project, pipeline, job), **job.plan.variables}
        job.run = JobRun(JobSpec(
            job_id=job.id, name=job.plan.name, project_path=project.path_with_namespace, files=dict(commit.tree),
            script=job.plan.script, variables=job.environment, image=job.plan.image or "fake-default:latest",
            timeout_seconds=timeout, artifact_paths=job.plan.artifact_paths, artifact_when=job.plan.artifact_when,
            kernel_env=self.kernel_env, job_user=self.job_user, images=self.images,
            image_cache=(self.image_cache or self._own_image_cache.get()) if self.images == PULL else None,
        ))
        self._advance(pipeline)
        self._in_thread(self._work, job.id, name=f"fake-gitlab-job-{job.id}")

    def _predefined(self, project: Project, pipeline: Pipeline, job: Job) -> dict[str, str]:
        """The CI/CD variables GitLab sets for every job (the part of them jobs here may read)."""
        web = f"{self.url}/{project.path_with_namespace}"
        variables = {
            "CI": "true", "GITLAB_CI": "true", "CI_SERVER_URL": self.url, "CI_API_V4_URL": self.api_url,
            "CI_SERVER_VERSION": GITLAB_VERSION, "CI_PROJECT_ID": str(project.id),
            "CI_PROJECT_PATH": project.path_with_namespace, "CI_PROJECT_URL": web,
            "CI_PROJECT_DIR": f"/builds/{project.path_with_namespace}", "CI_PIPELINE_ID": str(pipeline.id),
            "CI_PIPELINE_SOURCE": pipeline.source, "CI_PIPELINE_URL": f"{web}/-/pipelines/{pipeline.id}",
            "CI_COMMIT_SHA": pipeline.sha, "CI_COMMIT_SHORT_SHA": pipeline.sha[:8], "CI_COMMIT_REF_NAME": pipeline.ref,
            "CI_JOB_ID": str(job.id), "CI_JOB_NAME": job.plan.name, "CI_JOB_STAGE": job.plan.stage,
            "CI_JOB_URL": f"{web}/-/jobs/{job.id}", "CI_JOB_IMAGE": job.plan.image,
            "CI_JOB_TIMEOUT": str(int(job.timeout_seconds)), "GITLAB_USER_LOGIN": ADMIN["username"],
        }
        variables["CI_COMMIT_TAG" if pipeline.tag else "CI_COMMIT_BRANCH"] = pipeline.ref
        return variables

    def _work(self, job_id: int) -> None:
        with self._lock:
            job = self._jobs[job_id]
            run = job.run
        try:
            outcome = run.run()
            status, reason = outcome.status, outcome.failure_reason
            trace, artifacts = outcome.trace, outcome.artifacts_zip
        except Exception as error:  # noqa: BLE001 - a bug in the fake must not leave a job running for ever
            status, reason, artifacts = "failed", "runner_system_failure", None
            trace = run.trace() + f"\nERROR: Job failed (system failure): {error!r}\n".encode()
        with self._lock:
            job.run, job.trace = None, trace
            if job.status == "running":  # not cancelled meanwhile
                job.status, job.failure_reason, job.finished_at = status, reason, _now()
                if not self.drop_artifacts:
                    job.artifacts_zip = artifacts
            self._advance(self._pipelines[job.pipeline_id])

    def _in_thread(self, target, *args, name: str) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        self._workers = [worker for worker in self._workers if worker.is_alive()] + [thread]
        thread.start()

    # --- hooks ---

    def _tag_push_body(self, project: Project, name: str, tag: Tag | None, *, deleted: bool = False) -> dict:
        web_url = f"{self.url}/{project.path_with_namespace}"
        git_http = f"{web_url}.git"
        git_ssh = f"git@{urlsplit(self.url).hostname}:{project.path_with_namespace}.git"
        visibility_level = {"private": 0, "internal": 10, "public": 20}[project.visibility]
        project_json = {
            "id": project.id, "name": project.name, "description": project.description, "web_url": web_url,
            "avatar_url": None, "git_ssh_url": git_ssh, "git_http_url": git_http,
            "namespace": project.namespace.path, "visibility_level": visibility_level,
            "path_with_namespace": project.path_with_namespace, "default_branch": project.default_branch,
            "ci_config_path": None, "homepage": web_url, "url": git_ssh, "ssh_url": git_ssh, "http_url": git_http,
        }
        commits = []
        if tag is not None and not deleted:
            commit = project.commits[tag.commit_id]
            commits = [{"id": commit.id, "message": commit.message, "title": commit.message.splitlines()[0],
                        "timestamp": _iso(commit.created_at), "url": f"{web_url}/-/commit/{commit.id}",
                        "author": {"name": ADMIN["name"], "email": ADMIN["email"]},
                        "added": [], "modified": [], "removed": []}]
        present = tag is not None and not deleted
        return {
            "object_kind": "tag_push", "event_name": "tag_push",
            "before": tag.target if deleted and tag else ZERO_SHA, "after": tag.target if present else ZERO_SHA,
            "ref": f"refs/tags/{name}", "ref_protected": False,
            "checkout_sha": tag.commit_id if present else None, "message": tag.message if present else None,
            "user_id": ADMIN["id"], "user_name": ADMIN["name"], "user_username": ADMIN["username"],
            "user_email": "", "user_avatar": None, "project_id": project.id, "project": project_json,
            "commits": commits, "total_commits_count": len(commits), "push_options": {},
            "repository": {"name": project.name, "url": git_ssh, "description": project.description,
                           "homepage": web_url, "git_http_url": git_http, "git_ssh_url": git_ssh,
                           "visibility_level": visibility_level},
        }

    def _fire_hooks(self, project: Project, body: dict) -> None:
        for hook in project.hooks.values():
            if not hook.tag_push_events:
                continue
            headers = {"Content-Type": "application/json", "User-Agent": f"GitLab/{GITLAB_VERSION}",
                       "X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Instance": self.url,
                       "X-Gitlab-Webhook-UUID": str(uuid.uuid4()), "X-Gitlab-Event-UUID": str(uuid.uuid4())}
            if hook.token:
                headers["X-Gitlab-Token"] = hook.token
            delivery = {"hook_id": hook.id, "url": hook.url, "event": "Tag Push Hook", "headers": headers,
                        "body": copy.deepcopy(body), "status": None, "error": None}
            self._deliveries.append(delivery)
            self._in_thread(self._deliver, delivery, name=f"fake-gitlab-hook-{hook.id}")

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
            delivery.update(status=status, error=error)

    # ================================================================================================================
    # JSON as the API shows it
    # ================================================================================================================

    def _namespace_json(self, namespace: Namespace) -> dict:
        return {"id": namespace.id, "name": namespace.path, "path": namespace.path, "kind": namespace.kind,
                "full_path": namespace.full_path, "parent_id": namespace.parent_id, "avatar_url": None,
                "web_url": f"{self.url}/{namespace.full_path}"}

    def _project_json(self, project: Project) -> dict:
        web_url = f"{self.url}/{project.path_with_namespace}"
        return {
            "id": project.id, "name": project.name, "path": project.path, "description": project.description,
            "name_with_namespace": f"{project.namespace.path} / {project.name}",
            "path_with_namespace": project.path_with_namespace, "created_at": _iso(project.created_at),
            "default_branch": project.default_branch if project.branches else None,
            "visibility": project.visibility, "web_url": web_url, "http_url_to_repo": f"{web_url}.git",
            "namespace": self._namespace_json(project.namespace), "empty_repo": not project.commits,
            "archived": False, "jobs_enabled": project.jobs_enabled,
            "builds_access_level": "enabled" if project.jobs_enabled else "disabled",
            "_links": {"self": f"{self.api_url}/projects/{project.id}"},
        }

    def _commit_json(self, project: Project, commit: Commit) -> dict:
        title = commit.message.splitlines()[0] if commit.message else ""
        return {
            "id": commit.id, "short_id": commit.id[:8], "title": title, "message": commit.message,
            "created_at": _iso(commit.created_at), "parent_ids": list(commit.parent_ids),
            "author_name": ADMIN["name"], "author_email": ADMIN["email"], "authored_date": _iso(commit.created_at),
            "committer_name": ADMIN["name"], "committer_email": ADMIN["email"],
            "committed_date": _iso(commit.created_at),
            "web_url": f"{self.url}/{project.path_with_namespace}/-/commit/{commit.id}",
        }

    def _tag_json(self, project: Project, tag: Tag) -> dict:
        return {"name": tag.name, "message": tag.message, "target": tag.target,
                "commit": self._commit_json(project, project.commits[tag.commit_id]),
                "release": None, "protected": False, "created_at": _iso(tag.created_at)}

    def _hook_json(self, project: Project, hook: Hook) -> dict:
        return {"id": hook.id, "url": hook.url, "project_id": project.id, "push_events": hook.push_events,
                "tag_push_events": hook.tag_push_events, "enable_ssl_verification": hook.enable_ssl_verification,
                "created_at": _iso(hook.created_at)}

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
            "tag": pipeline.tag, "yaml_errors": pipeline.yaml_errors, "user": _user_brief(),
            "started_at": _iso(pipeline.started_at), "finished_at": _iso(pipeline.finished_at),
            "duration": duration,
        }

    def _job_json(self, job: Job) -> dict:
        project = self._projects[job.project_id]
        pipeline = self._pipelines[job.pipeline_id]
        duration = queued = None
        if job.started_at:
            duration = ((job.finished_at or _now()) - job.started_at).total_seconds()
            queued = (job.started_at - job.queued_at).total_seconds() if job.queued_at else None
        data: dict[str, Any] = {
            "id": job.id, "status": job.status, "stage": job.plan.stage, "name": job.plan.name, "ref": pipeline.ref,
            "tag": pipeline.tag, "allow_failure": False, "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at), "duration": duration,
            "queued_duration": queued, "user": _user_brief(),
            "pipeline": {"id": pipeline.id, "project_id": project.id, "ref": pipeline.ref, "sha": pipeline.sha,
                         "status": pipeline.status},
            "web_url": f"{self.url}/{project.path_with_namespace}/-/jobs/{job.id}", "artifacts": [],
        }
        if job.artifacts_zip is not None:
            data["artifacts"].append({"file_type": "archive", "size": len(job.artifacts_zip),
                                      "filename": "artifacts.zip", "file_format": "zip"})
            data["artifacts_file"] = {"filename": "artifacts.zip", "size": len(job.artifacts_zip)}
        if job.status == "failed":
            data["failure_reason"] = job.failure_reason or "unknown_failure"
        return data

    # ================================================================================================================
    # the HTTP API
    # ================================================================================================================

    def answer(self, request: Request, exchange: Exchange) -> Response:
        try:
            if not request.url_path.startswith("/api/v4/"):
                raise _not_found()
            if not secrets.compare_digest(request.headers.get("private-token", "").encode(), self.token.encode()):
                raise ApiError(401, {"message": "401 Unauthorized"})
            params = {**request.query, **_body_params(request)}
            path = request.url_path.removeprefix("/api/v4/")
            for method, pattern, handler in ROUTES:
                match = pattern.fullmatch(path)
                if match and method == request.method:
                    with self._lock:
                        return handler(self, request, params, **self._arguments(match.groupdict()))
            raise _not_found()
        except ApiError as error:
            return error.response

    def _arguments(self, groups: dict[str, str]) -> dict[str, Any]:
        """The path's parts, with projects, pipelines and jobs looked up (404 as GitLab says it)."""
        arguments: dict[str, Any] = {name: unquote(value) for name, value in groups.items()}
        if "project" in arguments:
            try:
                arguments["project"] = project = self._project(arguments["project"])
            except KeyError:
                raise _not_found("Project") from None
            if "pipeline" in arguments:
                pipeline = self._pipelines.get(int(arguments["pipeline"]))
                if pipeline is None or pipeline.project_id != project.id:
                    raise _not_found()
                arguments["pipeline"] = pipeline
            if "job" in arguments:
                job = self._jobs.get(int(arguments["job"]))
                if job is None or job.project_id != project.id:
                    raise _not_found("Job")
                arguments["job"] = job
        return arguments

    def _get_namespace(self, request: Request, params: dict, ident: str) -> Response:
        namespace = next((ns for ns in self._namespaces.values() if str(ns.id) == ident), None)
        namespace = namespace or self._namespaces.get(ident.lower())
        if namespace is None:
            raise _not_found("Namespace")
        return json_response(200, self._namespace_json(namespace))

    def _post_project(self, request: Request, params: dict) -> Response:
        name, path = params.get("name"), params.get("path")
        if not name and not path:
            raise ApiError(400, {"error": "name, path are missing, at least one parameter must be provided"})
        path = str(path or re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-"))
        namespace = self._namespaces.get(ADMIN["username"])
        if params.get("namespace_id"):
            namespace = next((ns for ns in self._namespaces.values() if ns.id == int(params["namespace_id"])), None)
            if namespace is None:
                raise _not_found("Namespace")
        project = self._new_project(namespace, name=str(name or path), path=path,
                                    description=str(params.get("description") or ""))
        self._update_project(project, params)
        return json_response(201, self._project_json(project))

    def _get_project(self, request: Request, params: dict, project: Project) -> Response:
        return json_response(200, self._project_json(project))

    def _post_commit(self, request: Request, params: dict, project: Project) -> Response:
        return json_response(201, self._commit_json(project, self._create_commit(project, params)))

    def _get_commit(self, request: Request, params: dict, project: Project, ref: str) -> Response:
        commit = self._resolve(project, ref)
        if commit is None:
            raise _not_found("Commit")
        return json_response(200, self._commit_json(project, commit))

    def _get_tree(self, request: Request, params: dict, project: Project) -> Response:
        if not project.commits:
            return self._paginate(request, [])
        commit = self._resolve(project, str(params.get("ref") or project.default_branch))
        if commit is None:
            raise _not_found("Tree")
        recursive = str(params.get("recursive", "")).lower() in ("1", "true")
        folders = {"/".join(path.split("/")[:depth]) for path in commit.tree for depth in range(1, path.count("/") + 1)}
        entries = [{"id": hashlib.sha1(folder.encode()).hexdigest(), "name": folder.rsplit("/", 1)[-1],
                    "type": "tree", "path": folder, "mode": "040000"} for folder in sorted(folders)]
        entries += [{"id": _blob_sha(content), "name": path.rsplit("/", 1)[-1], "type": "blob", "path": path,
                     "mode": "100644"} for path, content in sorted(commit.tree.items())]
        return self._paginate(request, [entry for entry in entries if recursive or "/" not in entry["path"]])

    def _get_raw_file(self, request: Request, params: dict, project: Project, path: str) -> Response:
        commit = self._resolve(project, str(params.get("ref") or project.default_branch))
        if commit is None:
            raise _not_found("Commit")
        if path not in commit.tree:
            raise _not_found("File")
        return Response(200, commit.tree[path], "text/plain; charset=utf-8")

    def _post_tag(self, request: Request, params: dict, project: Project) -> Response:
        return json_response(201, self._tag_json(project, self._create_tag(project, params)))

    def _get_tag(self, request: Request, params: dict, project: Project, name: str) -> Response:
        if name not in project.tags:
            raise _not_found("Tag")
        return json_response(200, self._tag_json(project, project.tags[name]))

    def _post_pipeline(self, request: Request, params: dict, project: Project) -> Response:
        if not params.get("ref"):
            raise _missing("ref")
        if params.get("variables"):
            raise _bad_request({"base": ["the fake GitLab does not implement pipeline variables"]})
        return json_response(201, self._pipeline_json(self._create_pipeline(project, str(params["ref"]),
                                                                            source="api")))

    def _get_pipeline(self, request: Request, params: dict, project: Project, pipeline: Pipeline) -> Response:
        return json_response(200, self._pipeline_json(pipeline))

    def _get_pipeline_jobs(self, request: Request, params: dict, project: Project, pipeline: Pipeline) -> Response:
        return self._paginate(request, [self._job_json(self._jobs[job_id]) for job_id in pipeline.job_ids])

    def _cancel(self, request: Request, params: dict, project: Project, pipeline: Pipeline) -> Response:
        self._cancel_pipeline(pipeline)
        return json_response(201, self._pipeline_json(pipeline))

    def _get_job(self, request: Request, params: dict, project: Project, job: Job) -> Response:
        return json_response(200, self._job_json(job))

    def _get_artifacts(self, request: Request, params: dict, project: Project, job: Job) -> Response:
        if job.artifacts_zip is None:
            raise _not_found()
        return Response(200, job.artifacts_zip, "application/zip",
                        {"Content-Disposition": 'attachment; filename="artifacts.zip"'})

    def _get_trace(self, request: Request, params: dict, project: Project, job: Job) -> Response:
        return Response(200, job.run.trace() if job.run else job.trace, "text/plain; charset=utf-8")

    def _post_hook(self, request: Request, params: dict, project: Project) -> Response:
        url = params.get("url")
        if not url:
            raise _missing("url")
        if not str(url).startswith(("http://", "https://")):
            raise _bad_request({"url": ["is blocked: Only allowed schemes are http, https"]})
        flag = {key: str(params.get(key, default)).lower() in ("1", "true") for key, default in (
            ("push_events", True), ("tag_push_events", False), ("enable_ssl_verification", True))}
        hook = Hook(self._next("hook"), str(url), str(params.get("token") or ""), flag["push_events"],
                    flag["tag_push_events"], flag["enable_ssl_verification"], _now())
        project.hooks[hook.id] = hook
        return json_response(201, self._hook_json(project, hook))

    def _paginate(self, request: Request, items: list) -> Response:
        """One page of `items`, with GitLab's offset pagination headers."""
        query = request.query
        try:
            page = max(int(query.get("page", 1)), 1)
            per_page = min(max(int(query.get("per_page", 20)), 1), 100)
        except ValueError:
            raise ApiError(400, {"error": "page is invalid"}) from None
        pages = max((len(items) + per_page - 1) // per_page, 1)

        def link(number: int) -> str:
            return f"{self.url}{request.url_path}?{urlencode({**query, 'page': number, 'per_page': per_page})}"

        links = [f'<{link(page + 1)}>; rel="next"'] if page < pages else []
        links += [f'<{link(page - 1)}>; rel="prev"'] if page > 1 else []
        links += [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items)),
                   "X-Total-Pages": str(pages), "X-Next-Page": str(page + 1) if page < pages else "",
                   "X-Prev-Page": str(page - 1) if page > 1 else "", "Link": ", ".join(links)}
        return json_response(200, items[(page - 1) * per_page:page * per_page], headers=headers)


_PROJECT = r"projects/(?P<project>[^/]+)"
ROUTES = [(method, re.compile(pattern), handler) for method, pattern, handler in (
    ("GET", r"namespaces/(?P<ident>[^/]+)", FakeGitLab._get_namespace),
    ("POST", r"projects", FakeGitLab._post_project),
    ("GET", _PROJECT, FakeGitLab._get_project),
    ("POST", _PROJECT + r"/repository/commits", FakeGitLab._post_commit),
    ("GET", _PROJECT + r"/repository/commits/(?P<ref>[^/]+)", FakeGitLab._get_commit),
    ("GET", _PROJECT + r"/repository/tree", FakeGitLab._get_tree),
    ("GET", _PROJECT + r"/repository/files/(?P<path>[^/]+)/raw", FakeGitLab._get_raw_file),
    ("POST", _PROJECT + r"/repository/tags", FakeGitLab._post_tag),
    ("GET", _PROJECT + r"/repository/tags/(?P<name>[^/]+)", FakeGitLab._get_tag),
    ("POST", _PROJECT + r"/pipeline", FakeGitLab._post_pipeline),
    ("GET", _PROJECT + r"/pipelines/(?P<pipeline>\d+)", FakeGitLab._get_pipeline),
    ("GET", _PROJECT + r"/pipelines/(?P<pipeline>\d+)/jobs", FakeGitLab._get_pipeline_jobs),
    ("POST", _PROJECT + r"/pipelines/(?P<pipeline>\d+)/cancel", FakeGitLab._cancel),
    ("GET", _PROJECT + r"/jobs/(?P<job>\d+)", FakeGitLab._get_job),
    ("GET", _PROJECT + r"/jobs/(?P<job>\d+)/artifacts", FakeGitLab._get_artifacts),
    ("GET", _PROJECT + r"/jobs/(?P<job>\d+)/trace", FakeGitLab._get_trace),
    ("POST", _PROJECT + r"/hooks", FakeGitLab._post_hook),
)]


def _composite_status(pipeline: Pipeline, statuses: list[str]) -> str:
    """The pipeline's status from its jobs', as GitLab composes it."""
    if not statuses:
        return pipeline.status
    if "running" in statuses:
        return "canceling" if pipeline.canceled else "running"
    if all(status in FINISHED for status in statuses):
        if "failed" in statuses:
            return "failed"
        if pipeline.canceled or "canceled" in statuses:
            return "canceled"
        return "skipped" if all(status == "skipped" for status in statuses) else "success"
    if "pending" in statuses:
        return "running" if any(status in FINISHED for status in statuses) else "pending"
    return "created"


def _decode_content(content: Any, encoding: str) -> bytes:
    if not isinstance(content, str):
        raise ApiError(400, {"error": "content is invalid"})
    if encoding == "base64":
        try:
            return base64.b64decode(content, validate=True)
        except ValueError:
            raise _bad_request("Invalid base64 content") from None
    if encoding != "text":
        raise ApiError(400, {"error": "encoding does not have a valid value"})
    return content.encode("utf-8")


def _body_params(request: Request) -> dict:
    """The JSON body's parameters (python-gitlab sends JSON)."""
    if not request.body:
        return {}
    if "application/json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(request.body)
        except ValueError:
            raise ApiError(400, {"error": "The request body is not valid JSON"}) from None
        if not isinstance(data, dict):
            raise ApiError(400, {"error": "The request body must be a JSON object"})
        return data
    raise ApiError(415, {"error": "The provided content-type is not supported."})


def _user_brief() -> dict:
    return {key: ADMIN[key] for key in ("id", "username", "name", "state")}


def _default_kernel_env() -> Path:
    """The environment of settings.RUNNER_KERNEL_PYTHON when Django is configured, else var/kernel-env here."""
    try:
        from django.conf import settings

        if settings.configured and getattr(settings, "RUNNER_KERNEL_PYTHON", ""):
            return Path(settings.RUNNER_KERNEL_PYTHON).parent.parent  # .../bin/python -> the environment
    except ImportError:
        pass
    return DEFAULT_KERNEL_ENV
