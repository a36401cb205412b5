"""The `local` runner: the notebook's kernel alone in a bubblewrap sandbox, nbclient outside it.

Who runs where (see ../shared/SANDBOX.md for why each piece is there):
- The worker starts the collector (kernel_collector.py) as a child process with its own Python, a minimal
  environment and a memory limit, and waits for it at most the run's wall clock plus a grace period.
- The collector starts the sandbox, whose only program is the kernel (`python -m ipykernel_launcher -f ...`),
  connects to the kernel's IPC sockets from outside, and runs nbclient there. The executed notebook, the status,
  the output size and the peak memory are built in the collector's memory from the kernel protocol and handed to
  the worker through an anonymous file; nothing the sandbox can write is ever read back as a result.
- The sandbox sees a generated /etc/passwd, /usr (with the /bin, /lib links), the kernel environment read-only,
  the connection file read-only (the kernel needs its key; the kernel is the untrusted party anyway), the
  kernel's start-up file (kernel_startup.py) read-only, a folder for the kernel's sockets, the staged working
  directory and size-limited tmpfs /tmp and /dev/shm; nothing else of the host, and nothing of the worker or the
  collector.

What the sandbox gives:
- bwrap is started under `env -i` with an allowlist, so nothing of the worker's environment (database URL,
  keys) reaches the kernel, not even through /proc/1/environ; no secret is ever passed on the command line (the
  HMAC key is in the connection file, which only the sandbox user and the worker can read).
- When the worker is root it drops to a fresh unprivileged uid per run first (setpriv): root keeps its file
  access inside a user namespace, and RLIMIT_NPROC is not enforced for root. A non-root worker runs the sandbox
  under its own uid; the user, PID and mount namespaces still keep the collector out of the kernel's reach.
- No network (a new network namespace: its loopback is the sandbox's own), a new PID namespace (nothing
  survives the run), new session, all capabilities dropped.
- Limits: address space, CPU time, processes, file size and open files as rlimits; a per-cell timeout in
  nbclient; the wall clock of the whole run enforced from outside by killing the process tree; the size of the
  outputs counted as they arrive (see kernel_collector.py).
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from django.conf import settings

from repository.runners.base import Outcome, RunResult, RunSpec

COLLECTOR = Path(__file__).with_name("kernel_collector.py")
KERNEL_STARTUP = Path(__file__).with_name("kernel_startup.py")
KERNEL_ENV_MOUNT = "/opt/kernel-env"
RUN_MOUNT = "/run/nbarchive"  # the connection file and the socket folder, inside the sandbox
KERNEL_PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}  # with IPC, socket names `<ip>-<port>`
STARTUP_TIMEOUT_SECONDS = 120
COLLECTOR_GRACE_SECONDS = 30  # beyond the run's wall clock, before the worker kills the collector itself
COLLECTOR_BASE_MEMORY_MB = 1024  # the collector's address space before outputs (Python, ZeroMQ, nbclient)
LOG_LIMIT_BYTES = 256 * 1024
STATUS_LIMIT_BYTES = 64 * 1024
MB = 1024 * 1024
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp/home",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # No MPLBACKEND: ipykernel then uses the inline backend, so figures become outputs as in Jupyter.
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
    "JUPYTER_PLATFORM_DIRS": "1",
    "IPYTHONDIR": "/tmp/ipython",
}


class SandboxUnavailable(Exception):
    """The machine cannot run the sandbox (no bwrap, no kernel environment): an operator problem, not a verdict."""


@dataclass
class LocalSandboxRunner:
    kernel_python: Path
    # A root worker gives each run its own unprivileged uid from this range: RLIMIT_NPROC counts every process
    # and thread of a uid, so runs sharing one uid would eat each other's process limit.
    uid_first: int = 200_000
    uid_count: int = 60_000
    name: str = "local"

    @classmethod
    def from_settings(cls) -> "LocalSandboxRunner":
        return cls(kernel_python=Path(settings.RUNNER_KERNEL_PYTHON), uid_first=settings.RUNNER_SANDBOX_UID_FIRST,
                   uid_count=settings.RUNNER_SANDBOX_UID_COUNT)

    # --- the run -------------------------------------------------------------------------------------
    def run(self, spec: RunSpec) -> RunResult:
        self.check_available()
        started_at = datetime.now(UTC)
        uid = self._run_uid()
        # Read before the sandbox exists: the working directory is the notebook's to write once it runs.
        notebook = (spec.workdir / spec.notebook_path).read_text(encoding="utf-8")
        key = secrets.token_hex(32)
        with tempfile.TemporaryDirectory(prefix="nbarchive-run-") as private:
            private_dir = Path(private)
            etc_dir = private_dir / "etc"
            etc_dir.mkdir()
            self._write_identity(etc_dir, uid)
            ipc_dir = private_dir / "ipc"
            ipc_dir.mkdir()
            connection_file = private_dir / "kernel.json"
            self._write_connection_file(connection_file, key, uid)
            # A copy, read by the worker: the sandbox user need not be able to read the app's folder.
            startup_file = private_dir / "startup.py"
            startup_file.write_text(KERNEL_STARTUP.read_text(encoding="utf-8"), encoding="utf-8")
            startup_file.chmod(0o444)
            self._hand_over(spec.workdir, ipc_dir, private_dir, uid)
            command = self._command(spec, etc_dir, ipc_dir, connection_file, uid)
            status, executed, logs, overstayed = self._collect(command, spec, notebook, key, ipc_dir)
            finished_at = datetime.now(UTC)
        outcome, message, failed_cell = interpret_driver_status(
            status, returncode=status.get("sandbox_returncode"),
            timed_out=overstayed or status.get("outcome") == "timed_out", limits=spec.limits, executed=executed,
            logs=logs)
        peak_memory = status.get("peak_memory_bytes")
        return RunResult(
            outcome=outcome, message=message, executed_notebook=executed, logs=logs, started_at=started_at,
            finished_at=finished_at, peak_memory_bytes=peak_memory if isinstance(peak_memory, int) else None,
            failed_cell_index=failed_cell, environment=self.environment(),
        )

    def check_available(self) -> None:
        if shutil.which("bwrap") is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed; install the Debian package bubblewrap.")
        if not self.kernel_python.exists():
            raise SandboxUnavailable(
                f"The kernel environment {self.kernel_python} does not exist; create it with `make kernel-env`."
            )
        if os.geteuid() == 0 and shutil.which("setpriv") is None:
            raise SandboxUnavailable("setpriv (util-linux) is needed to drop root before starting the sandbox.")

    def environment(self) -> dict:
        """What really ran the notebook, for the report (the pinned image is not pulled by this runner)."""
        return {
            "runner": self.name,
            "sandbox": "bubblewrap",
            "kernel_python": str(self.kernel_python),
            "python_version": _kernel_python_version(self.kernel_python),
            "packages": _kernel_packages(self.kernel_python),
        }

    # --- pieces --------------------------------------------------------------------------------------
    def _write_identity(self, etc_dir: Path, uid: int) -> None:
        (etc_dir / "passwd").write_text(f"nbarchive:x:{uid}:{uid}:notebook:/tmp/home:/usr/sbin/nologin\n")
        (etc_dir / "group").write_text(f"nbarchive:x:{uid}:\n")
        (etc_dir / "hostname").write_text("nbarchive\n")
        for path in etc_dir.iterdir():
            path.chmod(0o444)
        etc_dir.chmod(0o755)

    def _write_connection_file(self, path: Path, key: str, uid: int) -> None:
        """Ours, not the kernel's: fixed socket names in the socket folder as the sandbox sees it."""
        info = {"transport": "ipc", "ip": f"{RUN_MOUNT}/ipc/kernel", "key": key, "signature_scheme": "hmac-sha256",
                "kernel_name": "python3", **{f"{channel}_port": port for channel, port in KERNEL_PORTS.items()}}
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
        if os.geteuid() == 0:
            os.chown(path, uid, uid)

    def _hand_over(self, workdir: Path, ipc_dir: Path, private: Path, uid: int) -> None:
        """Make the working directory's root and the socket folder writable by the sandbox user."""
        private.chmod(0o755)  # the sandbox user must be able to reach the bind sources
        if os.geteuid() == 0:
            for path in (workdir, ipc_dir):
                os.chown(path, uid, uid)
        workdir.chmod(0o755)
        ipc_dir.chmod(0o700)

    def _run_uid(self) -> int:
        # Not a security boundary by itself (the namespaces are): a rare collision only shares a process limit.
        return self.uid_first + secrets.randbelow(self.uid_count) if os.geteuid() == 0 else os.geteuid()

    def _command(self, spec: RunSpec, etc_dir: Path, ipc_dir: Path, connection_file: Path, uid: int) -> list[str]:
        kernel_env = self.kernel_python.parent.parent
        limits = spec.limits
        notebook_dir = PurePosixPath("/work", spec.notebook_path).parent
        bwrap = [
            "bwrap",
            "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
            "--cap-drop", "ALL", "--hostname", "nbarchive",
            "--uid", str(uid), "--gid", str(uid),
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
            "--ro-bind", str(etc_dir / "passwd"), "/etc/passwd",
            "--ro-bind", str(etc_dir / "group"), "/etc/group",
            "--ro-bind", str(etc_dir / "hostname"), "/etc/hostname",
            "--proc", "/proc", "--dev", "/dev",
            # --dev's /dev/shm would be a tmpfs of half the host's memory, outside RLIMIT_AS.
            "--size", str(limits.shm_mb * MB), "--tmpfs", "/dev/shm",
            "--size", str(limits.tmpfs_mb * MB), "--tmpfs", "/tmp",
            "--dir", "/tmp/home",
            # At a fixed path, so that wherever the checkout lives it cannot be shadowed by /work; a venv
            # finds its prefix from where its python is started, so it works when moved.
            "--ro-bind", str(kernel_env), KERNEL_ENV_MOUNT,
            "--ro-bind", str(connection_file), f"{RUN_MOUNT}/kernel.json",
            "--ro-bind", str(connection_file.with_name("startup.py")), f"{RUN_MOUNT}/startup.py",
            "--bind", str(ipc_dir), f"{RUN_MOUNT}/ipc",
            "--bind", str(spec.workdir), "/work",
            # bwrap's root is a tmpfs the sandbox user could fill; only /tmp, /dev/shm (size-limited), /work and
            # the socket folder stay writable.
            "--remount-ro", "/",
            "--chdir", str(notebook_dir),
            f"{KERNEL_ENV_MOUNT}/bin/{self.kernel_python.name}", "-m", "ipykernel_launcher",
            "-f", f"{RUN_MOUNT}/kernel.json",
            # As nbclient starts kernels: no history database. parent_handle=1 (the sandbox's init) also keeps
            # the kernel from printing its "how to connect" banner into the run's log.
            "--HistoryManager.hist_file=:memory:", "--IPKernelApp.parent_handle=1",
            f"--IPKernelApp.exec_files={RUN_MOUNT}/startup.py",
        ]
        environment = [f"{key}={value}" for key, value in SANDBOX_ENV.items()]
        command = ["env", "-i", *environment, *bwrap]
        if os.geteuid() == 0:
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                       *command]
        return command

    def _collect(self, command: list[str], spec: RunSpec, notebook: str, key: str,
                 ipc_dir: Path) -> tuple[dict, bytes | None, str, bool]:
        """Run the collector: (status, executed notebook, logs, whether the worker had to kill it)."""
        limits = spec.limits
        collector_spec = {
            "notebook": notebook,
            "command": command,
            "ipc_prefix": str(ipc_dir / "kernel"),
            "key": key,
            "ports": KERNEL_PORTS,
            "cell_timeout_seconds": limits.cell_timeout_seconds,
            "notebook_timeout_seconds": limits.notebook_timeout_seconds,
            "startup_timeout_seconds": min(STARTUP_TIMEOUT_SECONDS, limits.notebook_timeout_seconds),
            "max_output_bytes": limits.max_output_mb * MB,
            # What the collector itself may hold: the notebook, the outputs up to the cap and their serialisation,
            # on top of the interpreter. A kernel that floods faster than the cap is counted ends the collector,
            # never the worker.
            "collector_memory_bytes": COLLECTOR_BASE_MEMORY_MB * MB + 8 * limits.max_output_mb * MB + 4 * len(notebook),
            "rlimits": {
                "RLIMIT_AS": limits.memory_mb * MB,
                "RLIMIT_CPU": [limits.cpu_seconds, limits.cpu_seconds + 5],
                "RLIMIT_FSIZE": limits.max_file_size_mb * MB,
                "RLIMIT_NOFILE": limits.max_open_files,
                "RLIMIT_NPROC": limits.max_processes,
                "RLIMIT_CORE": 0,
            },
        }
        with tempfile.TemporaryFile() as spec_file, tempfile.TemporaryFile() as result, \
                tempfile.TemporaryFile() as log:
            spec_file.write(json.dumps(collector_spec).encode("utf-8"))
            spec_file.seek(0)
            process = subprocess.Popen(
                [sys.executable, "-I", str(COLLECTOR)], stdin=spec_file, stdout=result, stderr=log,
                env=_collector_environment(), start_new_session=True, close_fds=True,
            )
            overstayed = False
            try:
                process.wait(timeout=limits.notebook_timeout_seconds + COLLECTOR_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                overstayed = True
                # bwrap dies with its parent, and the sandbox's PID namespace with bwrap.
                _kill_group(process.pid)
                process.wait()
            log.seek(0)
            logs = log.read(LOG_LIMIT_BYTES).decode("utf-8", errors="replace")
            result.seek(0)
            status = _parse_status(result.readline(STATUS_LIMIT_BYTES))
            if status is None:
                status = {"outcome": "driver_error",
                          "message": f"the run's collector ended (exit code {process.returncode}) without a result"}
                executed = None
            else:
                cap = 2 * len(notebook.encode("utf-8")) + limits.max_output_mb * MB + MB
                executed = result.read(cap + 1) or None
                if executed is not None and len(executed) > cap:
                    executed = None
        return status, executed, logs, overstayed


def _collector_environment() -> dict:
    """The collector needs to find setpriv, env and bwrap, and nothing of the worker's configuration."""
    return {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8",
            "JUPYTER_PLATFORM_DIRS": "1", "MALLOC_ARENA_MAX": "2"}


def _parse_status(line: bytes) -> dict | None:
    try:
        status = json.loads(line)
    except ValueError:
        return None
    return status if isinstance(status, dict) and isinstance(status.get("outcome"), str) else None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def interpret_driver_status(status: dict, *, returncode, timed_out: bool, limits, executed, logs: str,
                            environment_name: str = "The local runner's environment") -> tuple[str, str, int | None]:
    """Outcome, message and failed cell from a run's status (the collector's, see kernel_collector.py, or the
    GitLab job's status.json written by sandbox_driver.py) and what the process did. Shared by every runner, so
    their messages agree."""
    cell = status.get("cell_index") if isinstance(status.get("cell_index"), int) else None
    where = f"cell {cell}" if cell is not None else "the notebook"
    outcome = status.get("outcome")
    if timed_out:
        return Outcome.TIMED_OUT, f"The notebook ran longer than {limits.notebook_timeout_seconds} s and was stopped.", cell
    if outcome == "completed" and executed is not None:
        return Outcome.COMPLETED, "The notebook ran to the end.", None
    if outcome == "cell_timeout":
        return Outcome.TIMED_OUT, f"{where.capitalize()} ran longer than {limits.cell_timeout_seconds} s.", cell
    if outcome == "output_limit":
        return Outcome.RESOURCE_LIMIT, f"The outputs grew past the limit of {limits.max_output_mb} MB at {where}.", cell
    if outcome == "kernel_disconnected":
        return Outcome.RESOURCE_LIMIT, (f"The kernel broke its connection at {where}: it sent a single message "
                                        f"larger than the output limit of {limits.max_output_mb} MB, or closed its "
                                        "sockets."), cell
    if outcome == "protocol_error":
        detail = str(status.get("message", ""))[:300]
        return Outcome.EXECUTION_FAILED, (f"The kernel sent a message at {where} that is not a valid Jupyter "
                                          f"message ({detail}); the run cannot be judged."), cell
    if outcome == "memory_error":
        return Outcome.RESOURCE_LIMIT, f"The run exceeded the memory limit of {limits.memory_mb} MB.", cell
    if outcome == "dead_kernel":
        signal_number = status.get("signal")
        seconds = status.get("seconds") if isinstance(status.get("seconds"), (int, float)) else 0
        # The kernel's exit signal is often gone by the time nbclient notices; a death after about the CPU
        # limit's worth of time is the CPU limit.
        if signal_number in (signal.SIGXCPU, signal.SIGKILL) or seconds >= 0.9 * limits.cpu_seconds:
            return Outcome.RESOURCE_LIMIT, (f"The kernel was stopped at {where}: it used more than "
                                            f"{limits.cpu_seconds} s of CPU time."), cell
        return Outcome.RESOURCE_LIMIT, (f"The kernel died while running {where} (signal {signal_number}); "
                                        "it probably exceeded a resource limit."), cell
    if outcome == "cell_error":
        return _classify_cell_error(str(status.get("ename", "")), str(status.get("evalue", "")), where, limits, cell,
                                    environment_name)
    if outcome == "completed":
        return Outcome.RESOURCE_LIMIT, "The executed notebook could not be read back (too large or missing).", None
    last_log_line = next((line for line in reversed(logs.splitlines()) if line.strip()), "")
    detail = str(status.get("message", ""))[:500] or (
        f"the sandbox exited with code {returncode}" + (f" ({last_log_line[:300]})" if last_log_line else ""))
    return Outcome.EXECUTION_FAILED, f"The notebook could not be run: {detail}", cell


def _classify_cell_error(ename: str, evalue: str, where: str, limits, cell,
                         environment_name: str) -> tuple[str, str, int | None]:
    """A cell raised: was it the notebook's own error, or one of our limits showing through?"""
    text = f"{ename}: {evalue}"
    if ename == "MemoryError":
        return Outcome.RESOURCE_LIMIT, f"{where.capitalize()} exceeded the memory limit of {limits.memory_mb} MB.", cell
    if "Resource temporarily unavailable" in evalue or (ename == "BlockingIOError" and "11" in evalue):
        return Outcome.RESOURCE_LIMIT, (f"{where.capitalize()} tried to start more than {limits.max_processes} "
                                        f"processes ({text})."), cell
    if "File too large" in evalue or "[Errno 27]" in evalue:
        return Outcome.RESOURCE_LIMIT, (f"{where.capitalize()} wrote a file larger than {limits.max_file_size_mb} MB "
                                        f"({text})."), cell
    if ename == "ModuleNotFoundError":
        return Outcome.EXECUTION_FAILED, (f"{where.capitalize()} raised {text}. {environment_name} lacks "
                                          "this package; the moderators will see this."), cell
    return Outcome.EXECUTION_FAILED, f"{where.capitalize()} raised {text}"[:1000], cell


_VERSION_CACHE: dict[str, object] = {}


def _kernel_python_version(kernel_python: Path) -> str:
    key = f"version:{kernel_python}"
    if key not in _VERSION_CACHE:
        result = subprocess.run([str(kernel_python), "-c", "import sys; print(sys.version.split()[0])"],
                                capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"}, check=False)
        _VERSION_CACHE[key] = result.stdout.strip()
    return str(_VERSION_CACHE[key])


def _kernel_packages(kernel_python: Path) -> dict:
    key = f"packages:{kernel_python}"
    if key not in _VERSION_CACHE:
        script = ("import importlib.metadata as m, json; "
                  "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
        result = subprocess.run([str(kernel_python), "-c", script], capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/bin:/bin"}, check=False)
        try:
            _VERSION_CACHE[key] = dict(sorted(json.loads(result.stdout).items(), key=lambda item: item[0].lower()))
        except ValueError:
            _VERSION_CACHE[key] = {}
    return dict(_VERSION_CACHE[key])  # type: ignore[arg-type]
