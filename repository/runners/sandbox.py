"""The kernel sandbox every in-process runner shares: one kernel in bubblewrap, nbclient outside in a collector.

The `local` runner (local.py) shows the kernel environment of this server through `/usr` and a bind of the
environment; the `image` runner (image.py) shows an unpacked image as `/`. Everything else is the same and lives
here: the private run folder (generated /etc/passwd, the connection file, the kernel's start-up file, the socket
folder), the bwrap command and its limits, the uid handling, and the collector (kernel_collector.py) that runs
nbclient outside the sandbox and hands back the status and the executed notebook. See local.py's docstring and
../shared/SANDBOX.md for why each piece is there.

A runner describes only what differs in a `KernelView` and calls `run_kernel(spec, view, uid)`.
"""

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from repository.runners.base import RunSpec, SandboxLimits
from repository.runners.sandbox_paths import as_seen_inside
from repository.runners.sandbox_start import kernel_start_message, sandbox_start_failure

logger = logging.getLogger(__name__)

COLLECTOR = Path(__file__).with_name("kernel_collector.py")
KERNEL_STARTUP = Path(__file__).with_name("kernel_startup.py")
KERNEL_LAUNCHER = Path(__file__).with_name("kernel_launcher.py")
LAUNCHER_NAME = "nbarchive_ipykernel_launcher.py"  # inside the sandbox: process listings still say ipykernel_launcher
# In the command where bwrap takes --json-status-fd; the collector (its BWRAP_STATUS_FD, the same string) puts
# the number of its pipe there.
BWRAP_STATUS_FD = "{bwrap_json_status_fd}"
RUN_MOUNT = "/run/nbarchive"  # the connection file and the socket folder, inside the sandbox
KERNEL_PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}  # with IPC, socket names `<ip>-<port>`
STARTUP_TIMEOUT_SECONDS = 120
COLLECTOR_GRACE_SECONDS = 30  # beyond the run's wall clock, before the worker kills the collector itself
COLLECTOR_BASE_MEMORY_MB = 1024  # the collector's address space before outputs (Python, ZeroMQ, nbclient)
MEMORY_SAMPLE_SECONDS = 0.1  # how often the worker looks at the collector's address space while it runs
COLLECTOR_MEMORY_EXHAUSTED = 0.9  # a collector that ended with its peak this close to its limit ran out of memory
# Signals that only come from outside the collector: the out-of-memory killer, an operator, a shutdown.
OUTSIDE_KILL_CODES = tuple(-number for number in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP))
LOG_LIMIT_BYTES = 256 * 1024
STATUS_LIMIT_BYTES = 64 * 1024
MB = 1024 * 1024
HOME = "/tmp/home"
CONNECTION_FILE = "kernel.json"
IDENTITY_FILES = ("passwd", "group", "hostname")
SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": HOME,
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
    # Writable caches under the tmpfs home: fontconfig and friends otherwise write "No writable cache
    # directories" to stderr, and every plotting notebook would differ from its stored outputs.
    "XDG_CACHE_HOME": f"{HOME}/.cache",
    "XDG_CONFIG_HOME": f"{HOME}/.config",
    "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
    "JUPYTER_PLATFORM_DIRS": "1",
    "IPYTHONDIR": "/tmp/ipython",
}
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxUnavailable(Exception):
    """The machine cannot run the sandbox (no bwrap, no kernel environment): an operator problem, not a verdict."""


@dataclass(frozen=True)
class KernelView:
    """What the kernel sees of a filesystem and its environment; the rest of the sandbox is common.

    root_mounts  bwrap arguments presenting `/` read-only, including /proc, /dev, a size-limited /tmp and
                 /dev/shm (the run's binds go on top, then `--remount-ro /`).
    kernel_python  the kernel's Python as a path inside the sandbox.
    identity_files  which of IDENTITY_FILES to overlay in /etc (an image's read-only /etc must already have them).
    outer_env    the environment bwrap itself starts with under `env -i`; the kernel inherits it unless
                 inner_env is set. Never a secret: /proc/1/environ shows it to the notebook.
    inner_env    when set, the kernel's environment, given with `--clearenv --setenv` (an image's Env must
                 never steer bwrap on the host); never a secret either, /proc/1/cmdline shows it.
    """

    root_mounts: list[str]
    kernel_python: str
    identity_files: tuple[str, ...] = IDENTITY_FILES
    outer_env: dict[str, str] = field(default_factory=lambda: dict(SANDBOX_ENV))
    inner_env: dict[str, str] | None = None


@dataclass
class KernelRun:
    status: dict
    executed: bytes | None
    logs: str
    overstayed: bool  # the worker had to kill the collector


def tmp_mounts(limits: SandboxLimits) -> list[str]:
    # --dev's /dev/shm would be a tmpfs of half the host's memory, outside RLIMIT_AS.
    return ["--size", str(limits.shm_mb * MB), "--tmpfs", "/dev/shm", "--size", str(limits.tmpfs_mb * MB),
            "--tmpfs", "/tmp"]


def run_uid(uid_first: int, uid_count: int) -> int:
    """A fresh unprivileged uid for a root worker, the worker's own otherwise."""
    # Not a security boundary by itself (the namespaces are): a rare collision only shares a process limit.
    return uid_first + secrets.randbelow(uid_count) if os.geteuid() == 0 else os.geteuid()


def run_kernel(spec: RunSpec, view: KernelView, uid: int) -> KernelRun:
    """Run spec's notebook with its kernel in the sandbox `view` describes, as `uid`; the collector's verdict
    material comes back. Raises OSError only for the worker's own failures (temporary files)."""
    # Read before the sandbox exists: the working directory is the notebook's to write once it runs.
    notebook = (spec.workdir / spec.notebook_path).read_text(encoding="utf-8")
    key = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="nbarchive-run-") as private:
        private_dir = Path(private)
        etc_dir = private_dir / "etc"
        etc_dir.mkdir()
        _write_identity(etc_dir, uid)
        ipc_dir = private_dir / "ipc"
        ipc_dir.mkdir()
        # In the kernel's writable socket folder: ipykernel before 6.26 (Debian bookworm's) rewrites its connection
        # file at start and fails on a read-only one. Nothing on the host reads it back; the collector has the key.
        _write_connection_file(ipc_dir / CONNECTION_FILE, key, uid)
        # A copy, read by the worker: the sandbox user need not be able to read the app's folder.
        for source, name in ((KERNEL_STARTUP, "startup.py"), (KERNEL_LAUNCHER, "launcher.py")):
            (private_dir / name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
            (private_dir / name).chmod(0o444)
        _hand_over(spec.workdir, ipc_dir, private_dir, uid)
        command = sandbox_command(spec, view, private_dir, uid)
        kernel_run = _collect(command, spec, notebook, key, ipc_dir)
        host_failure = sandbox_start_failure(kernel_run.status, kernel_run.logs)
        if host_failure:
            # The operator's log names the folder on the host; the run's message (read by the author) does not.
            logger.error("%s", host_failure)
        # The author reads the log and the failure message: only paths as the sandbox sees them.
        kernel_run.logs = as_seen_inside(kernel_run.logs, command=command, private_dir=private_dir)
        if isinstance(kernel_run.status.get("message"), str):
            kernel_run.status["message"] = as_seen_inside(kernel_run.status["message"], command=command,
                                                          private_dir=private_dir)
    failure = sandbox_start_failure(kernel_run.status, kernel_run.logs)
    if failure:
        raise SandboxUnavailable(failure)
    started_and_died = kernel_start_message(kernel_run.status, kernel_run.logs)
    if started_and_died:
        kernel_run.status["message"] = started_and_died
    if kernel_run.status.get("outcome") == "collector_lost":
        raise SandboxUnavailable(kernel_run.status["message"])
    return kernel_run


def sandbox_command(spec: RunSpec, view: KernelView, private_dir: Path, uid: int) -> list[str]:
    """setpriv (root worker) + env -i + bwrap + the kernel, for the run folder `private_dir`."""
    notebook_dir = PurePosixPath("/work", spec.notebook_path).parent
    bwrap = [
        # bwrap's own word on whether it started the kernel (see sandbox_start.py), not log lines.
        "bwrap", "--json-status-fd", BWRAP_STATUS_FD,
        "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session",
        "--cap-drop", "ALL", "--hostname", "nbarchive",
        "--uid", str(uid), "--gid", str(uid),
        *view.root_mounts,
        "--dir", HOME,
    ]
    for name in view.identity_files:
        bwrap += ["--ro-bind", str(private_dir / "etc" / name), f"/etc/{name}"]
    bwrap += [
        "--ro-bind", str(private_dir / "startup.py"), f"{RUN_MOUNT}/startup.py",
        "--ro-bind", str(private_dir / "launcher.py"), f"{RUN_MOUNT}/{LAUNCHER_NAME}",
        "--bind", str(private_dir / "ipc"), f"{RUN_MOUNT}/ipc",
        "--bind", str(spec.workdir), "/work",
        # bwrap's root is a tmpfs the sandbox user could fill; only /tmp, /dev/shm (size-limited), /work and
        # the socket folder stay writable.
        "--remount-ro", "/",
        "--chdir", str(notebook_dir),
    ]
    if view.inner_env is not None:
        bwrap.append("--clearenv")
        for key, value in view.inner_env.items():
            bwrap += ["--setenv", key, value]
    bwrap += [
        # A script, not `-m ipykernel_launcher`: nothing in the notebook's folder is imported before the kernel
        # is up (see kernel_launcher.py).
        view.kernel_python, f"{RUN_MOUNT}/{LAUNCHER_NAME}", "-f", f"{RUN_MOUNT}/ipc/{CONNECTION_FILE}",
        # As nbclient starts kernels: no history database. parent_handle=1 (the sandbox's init) also keeps
        # the kernel from printing its "how to connect" banner into the run's log.
        "--HistoryManager.hist_file=:memory:", "--IPKernelApp.parent_handle=1",
        f"--IPKernelApp.exec_files={RUN_MOUNT}/startup.py",
    ]
    command = ["env", "-i", *(f"{key}={value}" for key, value in view.outer_env.items()), *bwrap]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
    return command


def _write_identity(etc_dir: Path, uid: int) -> None:
    (etc_dir / "passwd").write_text(f"nbarchive:x:{uid}:{uid}:notebook:{HOME}:/usr/sbin/nologin\n")
    (etc_dir / "group").write_text(f"nbarchive:x:{uid}:\n")
    (etc_dir / "hostname").write_text("nbarchive\n")
    for path in etc_dir.iterdir():
        path.chmod(0o444)
    etc_dir.chmod(0o755)


def _write_connection_file(path: Path, key: str, uid: int) -> None:
    """Ours, not the kernel's: fixed socket names in the socket folder as the sandbox sees it."""
    info = {"transport": "ipc", "ip": f"{RUN_MOUNT}/ipc/kernel", "key": key, "signature_scheme": "hmac-sha256",
            "kernel_name": "python3", **{f"{channel}_port": port for channel, port in KERNEL_PORTS.items()}}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    if os.geteuid() == 0:
        os.chown(path, uid, uid)


def _hand_over(workdir: Path, ipc_dir: Path, private: Path, uid: int) -> None:
    """Make the working directory's root and the socket folder writable by the sandbox user."""
    private.chmod(0o755)  # the sandbox user must be able to reach the bind sources
    if os.geteuid() == 0:
        for path in (workdir, ipc_dir):
            os.chown(path, uid, uid)
    workdir.chmod(0o755)
    ipc_dir.chmod(0o700)


def _collector_spec(command: list[str], spec: RunSpec, notebook: str, key: str, ipc_dir: Path) -> dict:
    limits = spec.limits
    return {
        "notebook": notebook,
        "command": command,
        # The collector dies with the thread that starts it (prctl's parent-death signal): that thread waits for it.
        "worker_pid": os.getpid(),
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


def _collect(command: list[str], spec: RunSpec, notebook: str, key: str, ipc_dir: Path) -> KernelRun:
    """Run the collector and read back what it built in its own memory."""
    limits = spec.limits
    with tempfile.TemporaryFile() as spec_file, tempfile.TemporaryFile() as result, \
            tempfile.TemporaryFile() as log:
        collector_spec = _collector_spec(command, spec, notebook, key, ipc_dir)
        spec_file.write(json.dumps(collector_spec).encode("utf-8"))
        spec_file.seek(0)
        process = subprocess.Popen(
            [sys.executable, "-I", str(COLLECTOR)], stdin=spec_file, stdout=result, stderr=log,
            env=_collector_environment(), start_new_session=True, close_fds=True,
        )
        overstayed, peak_memory = _wait(process, limits.notebook_timeout_seconds + COLLECTOR_GRACE_SECONDS)
        log.seek(0)
        logs = log.read(LOG_LIMIT_BYTES).decode("utf-8", errors="replace")
        result.seek(0)
        status = _parse_status(result.readline(STATUS_LIMIT_BYTES))
        executed = None
        if status is None and overstayed:
            status = {"outcome": "timed_out", "message": "the worker stopped the run's collector at the wall clock"}
        elif status is None:
            status = _status_of_a_lost_collector(process.returncode, peak_memory,
                                                 collector_spec["collector_memory_bytes"])
        else:
            cap = 2 * len(notebook.encode("utf-8")) + limits.max_output_mb * MB + MB
            executed = result.read(cap + 1) or None
            if executed is not None and len(executed) > cap:
                executed = None
    return KernelRun(status, executed, logs, overstayed)


def _wait(process: subprocess.Popen, seconds: float) -> tuple[bool, int]:
    """Wait for the collector at most `seconds`, killing it past them; (whether it overstayed, its peak address
    space as last seen). The peak is sampled while it runs: once it has ended, nothing of its memory is left."""
    deadline = time.monotonic() + seconds
    peak = 0
    while True:
        try:
            process.wait(timeout=MEMORY_SAMPLE_SECONDS)
            return False, peak
        except subprocess.TimeoutExpired:
            peak = max(peak, _peak_address_space(process.pid))
            if time.monotonic() > deadline:
                # bwrap dies with its parent, and the sandbox's PID namespace with bwrap.
                _kill_group(process.pid)
                process.wait()
                return True, peak


def _peak_address_space(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _status_of_a_lost_collector(returncode: int, peak_memory: int, memory_limit: int) -> dict:
    """Why the collector ended without a result, as a status; a `collector_lost` one is the operator's problem.

    It holds nothing but what the kernel sent, under its own address-space limit: dying with its peak at that
    limit (an allocation that failed where Python could not raise MemoryError, as in ZeroMQ's I/O thread) is the
    notebook's output exhausting it. Killed by a signal from outside (the machine's out-of-memory killer, an
    operator), or failing below its limit, it says nothing about the notebook."""
    if peak_memory >= COLLECTOR_MEMORY_EXHAUSTED * memory_limit and returncode not in OUTSIDE_KILL_CODES:
        return {"outcome": "collector_memory",
                "message": f"the collector ended (exit code {returncode}) at its memory limit"}
    if returncode in OUTSIDE_KILL_CODES:
        how = (f"was killed by signal {-returncode} from outside the run (the machine's out-of-memory killer, or an "
               "operator)")
    else:
        how = f"failed (exit code {returncode}) below its memory limit"
    return {"outcome": "collector_lost",
            "message": f"The run's collector (the worker's process that drives the kernel) {how}. Nothing is known "
                       "about the notebook; the run is tried again later."}


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
