"""How the fake GitLab's runner executes one CI job: the job's script in a bubblewrap sandbox on this machine.

A GitLab runner with the Docker executor clones the project at the pipeline's commit into
/builds/<namespace>/<project>, pulls and starts the job's `image:`, runs `script` in a shell that stops at the
first failing command (`set -eo pipefail`), then uploads the artifacts. This module does the same with bubblewrap
standing in for the container; what the job sees as its `/` (the pulled image, or the kernel environment when a
test asks for it) is gitlab_job_roots.py's, the artifacts gitlab_job_artifacts.py's.

- The files of the commit are written to a private temporary folder, bound read-write at
  /builds/<path_with_namespace> (= CI_PROJECT_DIR, the working directory).
- The sandbox, as repository/runners/local.py builds it, but WITH the network (`--share-net`): a CI job reaches
  the network, and nbarchive's jobs download their inputs from nbarchive. bwrap starts under `env -i` with only
  the job's environment (the image's, then the predefined CI_* variables and the CI file's `variables`), so nothing
  of the test process's environment reaches the job, not even through /proc/1/environ. The image's loader
  variables (LD_*) are set inside with --setenv instead, so that they never steer bwrap itself on the host.
- Who the job is (`JobSpec.job_user`, `FakeGitLab.job_user`, and the image's USER): "root" (the default, as a
  Docker executor's jobs are) is root without a user namespace and with Docker's default capabilities (it may
  switch uid and signal any process of the job, but not make namespaces); "user" (an image user such as
  docker-stacks' jovyan, or a fake that is not root) is an unprivileged uid of the job's own in a user
  namespace, with no capability.
- The job's timeout is enforced from outside: at the deadline the whole process tree is killed (bwrap runs with
  --die-with-parent in its own PID namespace, in a session of its own), the job fails with failure_reason
  `job_execution_timeout`, and, as with a runner's job timeout, no artifacts are uploaded. Cancelling kills the
  tree the same way, at once.
- The trace is what the shell printed (stdout and stderr together, each command echoed as `$ command`),
  framed by runner-like lines, capped like GitLab's 4 MiB log limit.
- Artifacts: collected into a zip when `artifacts:when` (on_success, on_failure, always) says so.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.gitlab_job_artifacts import collect_artifacts
from tests.fakes.gitlab_job_roots import (
    DEFAULT_KERNEL_ENV,
    HOSTNAME,
    JOB_USER_HOME,
    KERNEL_ENV,
    PULL,
    PULL_POLICY_LINE,
    ImagePullFailed,
    ImageRoot,
    KernelEnvironmentRoot,
    open_parents,
    pull_image,
    sandbox_problem,
)

HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # bwrap's own, on the host
POLL_SECONDS = 0.05
MAX_TRACE_BYTES = 4 * 1024 * 1024  # GitLab's default log limit
MAX_FILE_SIZE_MB = 1024
UID_FIRST = 330_000  # a range apart from the local runner's (200_000 + 60_000)
UID_COUNT = 30_000
# What Docker grants a container by default (moby's defaultCapabilities), for jobs that run as root.
DOCKER_CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                       "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                       "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")


@dataclass
class JobSpec:
    """Everything the runner needs to run one job (all values already resolved by the fake's CI parser)."""

    job_id: int
    name: str
    project_path: str  # path_with_namespace
    files: dict[str, bytes]  # path -> content, of the commit
    script: list[str]
    variables: dict[str, str] = field(default_factory=dict)  # the job's whole environment besides PATH/HOME/LANG
    image: str = ""
    timeout_seconds: float = 3600.0
    artifact_paths: list[str] = field(default_factory=list)
    artifact_when: str = "on_success"
    kernel_env: Path = DEFAULT_KERNEL_ENV
    job_user: str = "root"  # "root": root in the job, as a Docker executor's default; "user": an unprivileged uid
    images: str = PULL  # PULL: the job runs in its pulled image; KERNEL_ENV: in the kernel environment (tests ask)
    image_cache: Any = None  # the ImageCache images are pulled into (PULL)


@dataclass
class JobOutcome:
    status: str  # success | failed | canceled
    failure_reason: str | None
    trace: bytes
    artifacts_zip: bytes | None  # None: no artifacts were uploaded
    exit_code: int | None = None


def go_duration(seconds: float) -> str:
    """A duration as Go prints it (the runner's messages do): 1h0m0s, 1m30s, 5s."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class JobRun:
    """One execution of a job. `run()` blocks (call it from a worker thread); `cancel()` may come from any thread;
    `trace()` gives the log so far at any time."""

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._process: subprocess.Popen | None = None
        self._log_path: Path | None = None
        self._head = bytearray()  # runner lines written before the shell starts
        self._root: KernelEnvironmentRoot | ImageRoot | None = None

    # --- from other threads ---

    def cancel(self) -> None:
        """Stop the job now: the process tree is killed before this returns."""
        self._cancelled.set()
        with self._lock:
            process = self._process
        if process is not None:
            _kill_tree(process)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def trace(self) -> bytes:
        with self._lock:
            data = bytes(self._head)
            log_path = self._log_path
        if log_path is not None:
            try:
                with open(log_path, "rb") as handle:
                    data += handle.read(MAX_TRACE_BYTES + 1)
            except OSError:
                pass
        return _cap_trace(data, MAX_TRACE_BYTES)

    # --- the run ---

    def run(self) -> JobOutcome:
        spec = self.spec
        self._say(f"Running with gitlab-runner 17.5.0-fake (nbarchive test fake)\n"
                  f"Preparing the \"docker\" executor\n"
                  f"Using Docker executor with image {spec.image} ...\n")
        problem = sandbox_problem(spec.images, spec.kernel_env)
        if problem:
            self._say(f"ERROR: Job failed (system failure): {problem}\n")
            return JobOutcome("failed", "runner_system_failure", self.trace(), None)
        if spec.images == KERNEL_ENV:
            self._say(f"fake: the image {spec.image} is not pulled; as this test asked, it maps to the local kernel "
                      f"environment {spec.kernel_env} (python3 on PATH), in a bubblewrap sandbox with network "
                      "access\n")
            return self._run_on(KernelEnvironmentRoot(spec.kernel_env))
        self._say(f"Pulling docker image {spec.image} ...\n")
        try:
            lease = pull_image(spec.image, spec.image_cache)
        except ImagePullFailed as exc:
            self._say(f"WARNING: Failed to pull image with policy \"always\": {exc} {PULL_POLICY_LINE}\n"
                      f"ERROR: Job failed: failed to pull image \"{spec.image}\" with specified policies [always]: "
                      f"{exc} {PULL_POLICY_LINE}\n")
            return JobOutcome("failed", "image_pull_failure", self.trace(), None)
        with lease as image:
            self._say(f"Using docker image {image.manifest_digest} for {spec.image} with digest {image.reference} "
                      "...\nfake: the image's root filesystem, unpacked, is the job's / (read-only), in a bubblewrap "
                      "sandbox with network access\n")
            return self._run_on(ImageRoot(image))

    def _run_on(self, root: KernelEnvironmentRoot | ImageRoot) -> JobOutcome:
        private = Path(tempfile.mkdtemp(prefix=f"fake-gitlab-job-{self.spec.job_id}-"))
        try:
            return self._run_in(private, root)
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def _run_in(self, private: Path, root: KernelEnvironmentRoot | ImageRoot) -> JobOutcome:
        spec = self.spec
        self._root = root
        uid = UID_FIRST + spec.job_id % UID_COUNT if os.geteuid() == 0 else os.geteuid()
        if self._as_root():
            uid = 0
        project_dir = private / "project"
        ci_dir = private / "ci"
        etc_dir = private / "etc"
        for folder in (project_dir, ci_dir, etc_dir):
            folder.mkdir()
        private.chmod(0o755)  # the sandbox user must reach the bind sources
        self._say(f"Getting source from Git repository\nChecking out {spec.variables.get('CI_COMMIT_SHORT_SHA', '')} "
                  f"as detached HEAD (ref is {spec.variables.get('CI_COMMIT_REF_NAME', '')})...\n")
        self._materialise(project_dir, uid)
        self._write_ci_files(ci_dir, etc_dir, uid)
        self._log_path = private / "trace.log"
        self._log_path.touch()
        deadline = time.monotonic() + spec.timeout_seconds
        self._say("Executing \"step_script\" stage of the job script\n")
        code, timed_out = self._shell(private, project_dir, ci_dir, etc_dir, uid, "step_script.sh", deadline)
        if self.cancelled:
            self._append_log(b"\nERROR: Job failed: canceled\n")
            return JobOutcome("canceled", None, self.trace(), None, code)
        if timed_out:
            self._append_log(f"\nERROR: Job failed: execution took longer than {go_duration(spec.timeout_seconds)} "
                             "seconds\n".encode())
            return JobOutcome("failed", "job_execution_timeout", self.trace(), None, code)
        succeeded = code == 0
        artifacts = None
        wanted = spec.artifact_when == "always" or (spec.artifact_when == "on_success") == succeeded
        if wanted and spec.artifact_paths:
            self._append_log(f"Uploading artifacts for {'successful' if succeeded else 'failed'} job\n".encode())
            artifacts, too_large = collect_artifacts(project_dir, spec.artifact_paths, self._append_log)
            if too_large:
                self._append_log(b"ERROR: Uploading artifacts as \"archive\" to coordinator... 413 Request Entity Too "
                                 b"Large  id=" + str(spec.job_id).encode() + b" status=413\n"
                                 b"FATAL: too large\n")
                artifacts = None
                if succeeded:
                    self._append_log(b"ERROR: Job failed: too large artifacts\n")
                    return JobOutcome("failed", "unknown_failure", self.trace(), None, code)
        if succeeded:
            self._append_log(b"Cleaning up project directory and file based variables\nJob succeeded\n")
            return JobOutcome("success", None, self.trace(), artifacts, code)
        self._append_log(f"Cleaning up project directory and file based variables\n"
                         f"ERROR: Job failed: exit code {code}\n".encode())
        return JobOutcome("failed", "script_failure", self.trace(), artifacts, code)

    # --- pieces ---

    def _say(self, text: str) -> None:
        with self._lock:
            if self._log_path is None:
                self._head += text.encode()
                return
        self._append_log(text.encode())

    def _append_log(self, data: bytes) -> None:
        if self._log_path is None:
            with self._lock:
                self._head += data
            return
        with open(self._log_path, "ab") as handle:
            handle.write(data)

    def _materialise(self, project_dir: Path, uid: int) -> None:
        """Write the commit's files, owned by the job's user."""
        for path, content in self.spec.files.items():
            target = project_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(0o644)
        for root, dirs, files in os.walk(project_dir):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            if os.geteuid() == 0:
                os.chown(root, uid, uid)
                for name in files:
                    os.chown(os.path.join(root, name), uid, uid)
        project_dir.chmod(0o755)

    def _write_ci_files(self, ci_dir: Path, etc_dir: Path, uid: int) -> None:
        spec = self.spec
        (ci_dir / "step_script.sh").write_text(_shell_script(spec.script, bash=self._root.is_bash))
        (ci_dir / "step_script.sh").chmod(0o644)
        ci_dir.chmod(0o755)
        ci_user = f"ci:x:{uid}:{uid}:ci job:{JOB_USER_HOME}:/bin/sh\n" if uid else ""
        ci_group = f"ci:x:{uid}:\n" if uid else ""
        (etc_dir / "passwd").write_text(f"root:x:0:0:root:/root:/bin/sh\n{ci_user}")
        (etc_dir / "group").write_text(f"root:x:0:\n{ci_group}")
        (etc_dir / "hostname").write_text(f"{HOSTNAME}\n")
        for path in etc_dir.iterdir():
            path.chmod(0o444)
        etc_dir.chmod(0o755)

    def _environment(self) -> dict[str, str]:
        environment = self._root.environment(as_root=self._as_root())
        environment.update(self.spec.variables)
        return environment

    def _command(self, project_dir: Path, ci_dir: Path, etc_dir: Path, uid: int, script: str) -> list[str]:
        root = self._root
        builds = f"/builds/{self.spec.project_path}"
        outside = {key: value for key, value in self._environment().items() if not key.startswith("LD_")}
        inside = [arg for key, value in self._environment().items() if key.startswith("LD_")
                  for arg in ("--setenv", key, value)]
        bwrap = ["bwrap", *self._identity(uid), "--die-with-parent", "--new-session", "--hostname", HOSTNAME,
                 *root.mounts(etc_dir), "--dir", JOB_USER_HOME,
                 *open_parents(root.ci_dir, builds),
                 "--ro-bind", str(ci_dir), root.ci_dir,
                 "--bind", str(project_dir), builds,
                 "--remount-ro", "/",
                 "--chdir", builds, *inside,
                 root.shell, *(["--noprofile", "--norc"] if root.is_bash else []), f"{root.ci_dir}/{script}"]
        command = ["env", "-i", *(f"{key}={value}" for key, value in outside.items()), *bwrap]
        if os.geteuid() == 0 and not self._as_root():
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
        return command

    def _as_root(self) -> bool:
        return self.spec.job_user == "root" and os.geteuid() == 0 and self._root.user_is_root()

    def _identity(self, uid: int) -> list[str]:
        """Who the job is. Root: real root without a user namespace, with the capabilities Docker gives a
        container by default (so it may switch uid and signal any process in the job, but not make namespaces);
        otherwise the job's own uid in a user namespace of its own, with no capability."""
        if self._as_root():
            return ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL",
                    *(arg for cap in DOCKER_CAPABILITIES for arg in ("--cap-add", cap))]
        return ["--unshare-all", "--share-net", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
                "--uid", str(uid), "--gid", str(uid)]

    def _limited(self, command: list[str]) -> list[str]:
        """Resource limits for the whole tree, set by prlimit before anything else runs (no preexec_fn: the fake
        is multi-threaded). RLIMIT_NPROC counts the dedicated uid's processes only when we are root."""
        if shutil.which("prlimit") is None:
            return command
        file_size = MAX_FILE_SIZE_MB * 1024 * 1024
        limits = ["prlimit", "--core=0", f"--fsize={file_size}", "--nofile=4096"]
        if os.geteuid() == 0:
            limits.append("--nproc=1024")
        return [*limits, *command]

    def _shell(self, private: Path, project_dir: Path, ci_dir: Path, etc_dir: Path, uid: int, script: str,
               deadline: float) -> tuple[int | None, bool]:
        """Run one of the generated scripts; return (exit code, timed out)."""
        if self.cancelled:
            return None, False
        command = self._limited(self._command(project_dir, ci_dir, etc_dir, uid, script))
        with open(self._log_path, "ab") as log, self._lock:
            if self._cancelled.is_set():
                return None, False
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env={}, start_new_session=True, close_fds=True)
            self._process = process
        timed_out = False
        try:
            while True:
                try:
                    code = process.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if self.cancelled:
                    _kill_tree(process)
                    code = process.wait()
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                    _kill_tree(process)
                    code = process.wait()
                    break
        finally:
            with self._lock:
                self._process = None
        return code, timed_out


def _cap_trace(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    return data[:limit] + (f"\nJob's log exceeded limit of {limit} bytes.\n"
                           "Job execution will continue but no more output will be collected.\n").encode()


def _shell_script(commands: list[str], *, bash: bool = True) -> str:
    """The runner's shell: stop at the first failing command (and failing pipe, in bash), echo each command
    before running it."""
    lines = ["set -eo pipefail" if bash else "set -e", "set +o noclobber", "umask 0022"]
    for command in commands:
        lines.append(f"printf '%s\\n' {shlex.quote('$ ' + command)}")
        lines.append(command)
    return "\n".join(lines) + "\n"


def _kill_tree(process: subprocess.Popen) -> None:
    # The session leader is bwrap (after setpriv and env exec'ed into it). Its sandboxed child dies with it
    # (--die-with-parent), and with the PID namespace's init every process inside, whatever session it made.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
