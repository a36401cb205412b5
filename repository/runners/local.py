"""The `local` runner: nbclient inside a bubblewrap sandbox on this machine.

What the sandbox gives (see ../shared/SANDBOX.md for why each piece is there):
- bwrap is started under `env -i` with an allowlist, so nothing of the worker's environment (database URL,
  keys) reaches the kernel, not even through /proc/1/environ; no secret is ever passed on the command line.
- When the worker is root it drops to an unprivileged uid first (setpriv): root keeps its file access inside
  a user namespace, and RLIMIT_NPROC is not enforced for root.
- Only /usr (with the /bin, /lib links), the kernel environment, the driver script, a generated /etc/passwd,
  the staged working directory and an output folder are visible; /tmp is a size-limited tmpfs.
- No network (a new network namespace: its loopback is the sandbox's own), a new PID namespace (nothing
  survives the run), new session, all capabilities dropped.
- Limits: address space, CPU time, processes, file size and open files as rlimits; a per-cell timeout in
  nbclient; the wall clock of the whole run enforced from outside by killing the process tree; the size of the
  outputs checked after every cell and again when read back.
"""

import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from repository.runners.base import Outcome, RunResult, RunSpec

DRIVER = Path(__file__).with_name("sandbox_driver.py")
KERNEL_ENV_MOUNT = "/opt/kernel-env"
LOG_LIMIT_BYTES = 256 * 1024
MEMORY_SAMPLE_SECONDS = 0.25
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
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
        with tempfile.TemporaryDirectory(prefix="nbarchive-run-") as private:
            out_dir = Path(private) / "out"
            out_dir.mkdir()
            etc_dir = Path(private) / "etc"
            etc_dir.mkdir()
            self._write_identity(etc_dir, uid)
            self._hand_over(spec.workdir, out_dir, Path(private), uid)
            command = self._command(spec, out_dir, etc_dir, uid)
            returncode, logs, peak_memory, timed_out = self._execute(command, spec)
            finished_at = datetime.now(UTC)
            status = self._read_status(out_dir)
            executed = self._read_executed(out_dir, spec)
        outcome, message, failed_cell = self._interpret(status, returncode, timed_out, spec, executed, logs)
        return RunResult(
            outcome=outcome, message=message, executed_notebook=executed, logs=logs, started_at=started_at,
            finished_at=finished_at, peak_memory_bytes=peak_memory, failed_cell_index=failed_cell,
            environment=self.environment(),
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

    def _hand_over(self, workdir: Path, out_dir: Path, private: Path, uid: int) -> None:
        """Make the working directory's root and the output folder writable by the sandbox user."""
        private.chmod(0o755)  # the sandbox user must be able to reach the bind sources
        if os.geteuid() == 0:
            for path in (workdir, out_dir):
                os.chown(path, uid, uid)
        workdir.chmod(0o755)
        out_dir.chmod(0o700 if os.geteuid() == 0 else 0o755)

    def _run_uid(self) -> int:
        # Not a security boundary by itself (the namespaces are): a rare collision only shares a process limit.
        return self.uid_first + secrets.randbelow(self.uid_count) if os.geteuid() == 0 else os.geteuid()

    def _command(self, spec: RunSpec, out_dir: Path, etc_dir: Path, uid: int) -> list[str]:
        kernel_env = self.kernel_python.parent.parent
        limits = spec.limits
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
            "--size", str(limits.tmpfs_mb * 1024 * 1024), "--tmpfs", "/tmp",
            "--dir", "/tmp/home",
            # At a fixed path, so that wherever the checkout lives it cannot be shadowed by /work; a venv
            # finds its prefix from where its python is started, so it works when moved.
            "--ro-bind", str(kernel_env), KERNEL_ENV_MOUNT,
            "--ro-bind", str(DRIVER), "/opt/nbarchive/driver.py",
            "--bind", str(spec.workdir), "/work",
            "--bind", str(out_dir), "/out",
            # bwrap's root is a tmpfs the sandbox user could fill; only /tmp (size-limited), /work and /out
            # stay writable.
            "--remount-ro", "/",
            "--chdir", "/work",
            f"{KERNEL_ENV_MOUNT}/bin/{self.kernel_python.name}", "/opt/nbarchive/driver.py",
            f"/work/{spec.notebook_path}", "/out",
            str(limits.cell_timeout_seconds), str(limits.max_output_mb * 1024 * 1024),
        ]
        environment = [f"{key}={value}" for key, value in SANDBOX_ENV.items()]
        command = ["env", "-i", *environment, *bwrap]
        if os.geteuid() == 0:
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                       *command]
        return command

    def _execute(self, command: list[str], spec: RunSpec) -> tuple[int | None, str, int | None, bool]:
        limits = spec.limits

        def apply_limits():  # runs in the child between fork and exec, so the whole tree inherits them
            mb = 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb, limits.memory_mb * mb))
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_size_mb * mb, limits.max_file_size_mb * mb))
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files))
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={},
                preexec_fn=apply_limits, start_new_session=True, close_fds=True,
            )
            deadline = time.monotonic() + limits.notebook_timeout_seconds
            timed_out = False
            returncode = None
            peak_memory = 0
            next_sample = 0.0
            while True:
                pid, status, _ = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    returncode = os.waitstatus_to_exitcode(status)
                    process.returncode = returncode  # we reaped it ourselves
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    _kill_tree(process.pid)
                    _, status, _ = os.wait4(process.pid, 0)
                    process.returncode = returncode = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() >= next_sample:
                    peak_memory = max(peak_memory, _tree_rss_bytes(process.pid))
                    next_sample = time.monotonic() + MEMORY_SAMPLE_SECONDS
                time.sleep(0.05)
            log.seek(0)
            logs = log.read(LOG_LIMIT_BYTES).decode("utf-8", errors="replace")
        return returncode, logs, peak_memory or None, timed_out

    def _read_status(self, out_dir: Path) -> dict:
        path = out_dir / "status.json"
        try:
            if path.is_symlink() or path.stat().st_size > 64 * 1024:
                return {"outcome": "driver_error", "message": "The run's status file is not trustworthy."}
            status = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return status if isinstance(status, dict) else {}

    def _read_executed(self, out_dir: Path, spec: RunSpec) -> bytes | None:
        path = out_dir / "executed.ipynb"
        submitted_size = (spec.workdir / spec.notebook_path).stat().st_size
        cap = submitted_size + spec.limits.max_output_mb * 1024 * 1024 + 1024 * 1024
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > cap:
                return None
            with path.open("rb") as handle:
                return handle.read(cap)
        except OSError:
            return None

    def _interpret(self, status: dict, returncode, timed_out: bool, spec: RunSpec, executed,
                   logs: str) -> tuple[str, str, int | None]:
        return interpret_driver_status(status, returncode=returncode, timed_out=timed_out, limits=spec.limits,
                                       executed=executed, logs=logs)


def interpret_driver_status(status: dict, *, returncode, timed_out: bool, limits, executed, logs: str,
                            environment_name: str = "The local runner's environment") -> tuple[str, str, int | None]:
    """Outcome, message and failed cell from the driver's status.json (see sandbox_driver.py) and what the
    process did. Shared by every runner that executes the driver, so their messages agree."""
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


def _tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, read from /proc.

    Sampled while the run goes on: rusage cannot tell, because the kernel's usage does not reach us through
    the sandbox's PID namespace init.
    """
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1] is the parent pid
        rss[pid] = int(fields[21]) * PAGE_SIZE  # fields[21] is rss in pages
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def _kill_tree(pid: int) -> None:
    # bwrap runs with --die-with-parent and its own PID namespace: killing the session takes every process
    # inside with it, including ones that started sessions of their own.
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


_VERSION_CACHE: dict[str, object] = {}


def _kernel_python_version(kernel_python: Path) -> str:
    key = f"version:{kernel_python}"
    if key not in _VERSION_CACHE:
        result = subprocess.run([str(kernel_python), "-c", "import sys; print(sys.version.split()[0])"],
                                capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        _VERSION_CACHE[key] = result.stdout.strip()
    return str(_VERSION_CACHE[key])


def _kernel_packages(kernel_python: Path) -> dict:
    key = f"packages:{kernel_python}"
    if key not in _VERSION_CACHE:
        script = ("import importlib.metadata as m, json; "
                  "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
        result = subprocess.run([str(kernel_python), "-c", script], capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/bin:/bin"})
        try:
            _VERSION_CACHE[key] = dict(sorted(json.loads(result.stdout).items(), key=lambda item: item[0].lower()))
        except ValueError:
            _VERSION_CACHE[key] = {}
    return dict(_VERSION_CACHE[key])  # type: ignore[arg-type]
