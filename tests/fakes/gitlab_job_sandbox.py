"""How the fake GitLab's runner executes one CI job: the job's script in a bubblewrap sandbox on this machine.

A GitLab runner with the Docker executor clones the project at the pipeline's commit into
/builds/<namespace>/<project>, starts the job's `image:`, runs `script` in a shell that stops at the first
failing command (`set -eo pipefail`), then uploads the artifacts. This module does the same with the local
sandbox standing in for the container:

- The files of the commit are written to a private temporary folder, bound read-write at
  /builds/<path_with_namespace> (= CI_PROJECT_DIR, the working directory).
- The image is not pulled: every image maps to the local kernel environment (settings.RUNNER_KERNEL_PYTHON's
  environment, `var/kernel-env` of this checkout), bound read-only at its own path (its console scripts have
  that path in their shebang lines) and at /opt/kernel-env, with its bin/ first on PATH, so `python3`, `python`
  and `jupyter` are the kernel environment's, with nbclient and ipykernel. The trace names the image and says so.
- The sandbox, as repository/runners/local.py builds it, but WITH the network (`--share-net`): a CI job reaches
  the network, and nbarchive's jobs download their inputs from nbarchive. bwrap starts under `env -i` with only
  the job's variables (the predefined CI_* variables and the CI file's `variables`), so nothing
  of the test process's environment reaches the job, not even through /proc/1/environ.
- Who the job is (`JobSpec.job_user`, `FakeGitLab.job_user`): "root" (the default, as a Docker executor's jobs
  are) is root without a user namespace and with Docker's default capabilities (it may switch uid and signal
  any process of the job, but not make namespaces); "user" (an image user such as docker-stacks' jovyan, or a
  fake that is not root) is an unprivileged uid of the job's own in a user namespace, with no capability.
- The job's timeout is enforced from outside: at the deadline the whole process tree is killed (bwrap runs with
  --die-with-parent in its own PID namespace, in a session of its own), the job fails with failure_reason
  `job_execution_timeout`, and, as with a runner's job timeout, no artifacts are uploaded. Cancelling kills the
  tree the same way, at once.
- The trace is what the shell printed (stdout and stderr together, each command echoed as `$ command`),
  framed by runner-like lines, capped like GitLab's 4 MiB log limit.
- Artifacts: `artifacts:paths` (files or folders relative to the project folder; a folder brings everything in
  it) are collected into a zip, like artifacts.zip of a real job, when `artifacts:when` (on_success,
  on_failure, always) says so. Symbolic links are never followed (the job cannot make the fake read a file
  outside its folder); they are left out with a warning.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_KERNEL_ENV = REPO_ROOT / "var" / "kernel-env"
KERNEL_ENV_ALIAS = "/opt/kernel-env"
CI_DIR = "/opt/fake-gitlab-ci"  # the generated shell script, read-only
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Read-only if present: what a container image would have under /etc for name resolution and TLS.
ETC_BINDS = ("/etc/alternatives", "/etc/ssl", "/etc/ca-certificates", "/etc/hosts", "/etc/resolv.conf",
             "/etc/nsswitch.conf", "/etc/localtime", "/etc/mime.types")
POLL_SECONDS = 0.05
TMPFS_MB = 512
MAX_TRACE_BYTES = 4 * 1024 * 1024  # GitLab's default log limit
MAX_ARTIFACTS_BYTES = 100 * 1024 * 1024
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


@dataclass
class JobOutcome:
    status: str  # success | failed | canceled
    failure_reason: str | None
    trace: bytes
    artifacts_zip: bytes | None  # None: no artifacts were uploaded
    exit_code: int | None = None


def sandbox_problem(kernel_env: Path) -> str | None:
    """Why jobs cannot run on this machine, or None when they can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed on the machine of the fake runner; install the package bubblewrap."
    if not (kernel_env / "bin" / "python3").exists():
        return f"The kernel environment {kernel_env} does not exist; create it with `make kernel-env`."
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is needed to drop root before starting the sandbox."
    return None


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
                  f"Using Docker executor with image {spec.image} ...\n"
                  f"fake: the image {spec.image} is not pulled; it maps to the local kernel environment "
                  f"{spec.kernel_env} (python3 on PATH), in a bubblewrap sandbox with network access\n")
        problem = sandbox_problem(spec.kernel_env)
        if problem:
            self._say(f"ERROR: Job failed (system failure): {problem}\n")
            return JobOutcome("failed", "runner_system_failure", self.trace(), None)
        private = Path(tempfile.mkdtemp(prefix=f"fake-gitlab-job-{spec.job_id}-"))
        try:
            return self._run_in(private)
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def _run_in(self, private: Path) -> JobOutcome:
        spec = self.spec
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
            artifacts, too_large = self._collect_artifacts(project_dir)
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
        (ci_dir / "step_script.sh").write_text(_shell_script(spec.script))
        (ci_dir / "step_script.sh").chmod(0o644)
        ci_dir.chmod(0o755)
        ci_user, ci_group = (f"ci:x:{uid}:{uid}:ci job:/tmp/home:/bin/bash\n", f"ci:x:{uid}:\n") if uid else ("", "")
        (etc_dir / "passwd").write_text(f"root:x:0:0:root:/root:/bin/sh\n{ci_user}")
        (etc_dir / "group").write_text(f"root:x:0:\n{ci_group}")
        (etc_dir / "hostname").write_text("runner-fake\n")
        for path in etc_dir.iterdir():
            path.chmod(0o444)
        etc_dir.chmod(0o755)

    def _environment(self) -> dict[str, str]:
        spec = self.spec
        kernel_env = str(spec.kernel_env.resolve()) if spec.kernel_env.exists() else str(spec.kernel_env)
        environment = {
            "PATH": f"{kernel_env}/bin:{BASE_PATH}",
            "HOME": "/tmp/home",
            "LANG": "C.UTF-8",
            "HOSTNAME": "runner-fake",
        }
        environment.update(spec.variables)
        return environment

    def _command(self, project_dir: Path, ci_dir: Path, etc_dir: Path, uid: int, script: str) -> list[str]:
        spec = self.spec
        kernel_env = spec.kernel_env.resolve()
        builds = f"/builds/{spec.project_path}"
        bwrap = ["bwrap", *self._identity(uid), "--die-with-parent", "--new-session", "--hostname", "runner-fake",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
        ]
        for path in ETC_BINDS:
            if os.path.exists(path):
                bwrap += ["--ro-bind", path, path]
        bwrap += [
            "--ro-bind", str(etc_dir / "passwd"), "/etc/passwd",
            "--ro-bind", str(etc_dir / "group"), "/etc/group",
            "--ro-bind", str(etc_dir / "hostname"), "/etc/hostname",
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "1777", "--size", str(TMPFS_MB * 1024 * 1024), "--tmpfs", "/tmp",
            "--dir", "/tmp/home",
            # bwrap run by root makes the folders leading to a mount point 0700: make them as a container has them.
            *_open_parents(str(kernel_env), KERNEL_ENV_ALIAS, CI_DIR, builds),
            "--ro-bind", str(kernel_env), str(kernel_env),
            "--symlink", str(kernel_env), KERNEL_ENV_ALIAS,
            "--ro-bind", str(ci_dir), CI_DIR,
            "--bind", str(project_dir), builds,
            "--remount-ro", "/",
            "--chdir", builds,
            "/bin/bash", "--noprofile", "--norc", f"{CI_DIR}/{script}",
        ]
        command = ["env", "-i", *(f"{key}={value}" for key, value in self._environment().items()), *bwrap]
        if os.geteuid() == 0 and not self._as_root():
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
        return command

    def _as_root(self) -> bool:
        return self.spec.job_user == "root" and os.geteuid() == 0

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

    def _collect_artifacts(self, project_dir: Path) -> tuple[bytes | None, bool]:
        """Zip the files under the artifact paths; (None, False) when nothing matched, (None, True) when too large."""
        files = _regular_files(project_dir)
        chosen: dict[str, Path] = {}
        for raw in self.spec.artifact_paths:
            wanted = raw.strip().removeprefix("./").rstrip("/")
            if not wanted or wanted.startswith("/") or ".." in wanted.split("/"):
                self._append_log(f"WARNING: {raw}: not in the project directory; ignored\n".encode())
                continue
            for symlink in (rel for rel in files.symlinks if _under(rel, wanted)):
                self._append_log(f"WARNING: {symlink}: a symbolic link; the fake leaves it out\n".encode())
            matched = [rel for rel in files if _under(rel, wanted)]
            if not matched:
                self._append_log(f"WARNING: {wanted}: no matching files. Ensure that the artifact path is relative "
                                 "to the working directory\n".encode())
            chosen.update((rel, files[rel]) for rel in matched)
        if not chosen:
            self._append_log(b"ERROR: No files to upload\n")
            return None, False
        total = 0
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            directories: set[str] = set()
            for rel in sorted(chosen):
                parts = rel.split("/")
                for depth in range(1, len(parts)):
                    folder = "/".join(parts[:depth]) + "/"
                    if folder not in directories:
                        directories.add(folder)
                        archive.writestr(zipfile.ZipInfo(folder), b"")
                content = _read_no_follow(chosen[rel], MAX_ARTIFACTS_BYTES - total + 1)
                if content is None:
                    continue
                total += len(content)
                if total > MAX_ARTIFACTS_BYTES:
                    return None, True
                archive.writestr(rel, content)
        self._append_log(f"{len(chosen)} files and directories; artifacts.zip uploaded "
                         f"(fake: {total} bytes)\n".encode())
        return buffer.getvalue(), False


def _open_parents(*paths: str) -> list[str]:
    arguments: list[str] = []
    made: set[str] = set()
    for path in paths:
        parents = Path(path).parents
        for parent in reversed(parents[:-1]):  # from the top, without "/"
            if str(parent) not in made:
                made.add(str(parent))
                arguments += ["--perms", "0755", "--dir", str(parent)]
    return arguments


def _cap_trace(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    return data[:limit] + (f"\nJob's log exceeded limit of {limit} bytes.\n"
                           "Job execution will continue but no more output will be collected.\n").encode()


def _shell_script(commands: list[str]) -> str:
    """The runner's shell: stop at the first failing command, echo each command before running it."""
    lines = ["set -eo pipefail", "set +o noclobber", "umask 0022"]
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


def _under(rel: str, wanted: str) -> bool:
    return rel == wanted or rel.startswith(wanted + "/")


class _Files(dict):
    """Regular files under the project folder (relative posix path -> host path), plus the symbolic links seen."""

    symlinks: list[str]


def _regular_files(root: Path) -> _Files:
    files = _Files()
    files.symlinks = []
    for current, dirs, names in os.walk(root, followlinks=False):
        base = Path(current)
        for name in [*dirs]:
            if (base / name).is_symlink():
                files.symlinks.append((base / name).relative_to(root).as_posix())
                dirs.remove(name)
        for name in names:
            path = base / name
            rel = path.relative_to(root).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                files.symlinks.append(rel)
            elif stat.S_ISREG(mode):
                files[rel] = path
    return files


def _read_no_follow(path: Path, limit: int) -> bytes | None:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(max(limit, 0))
