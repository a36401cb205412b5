"""The `local` runner: the notebook's kernel alone in a bubblewrap sandbox, nbclient outside it.

The sandbox itself is built in sandbox.py, shared with the image runner (image.py); this runner shows the
kernel environment of this server (RUNNER_KERNEL_PYTHON), not the version's pinned image, and says so in reports.

Who runs where (see ../shared/SANDBOX.md for why each piece is there):
- The worker starts the collector (kernel_collector.py) as a child process with its own Python, a minimal
  environment and a memory limit, and waits for it at most the run's wall clock plus a grace period.
- The collector starts the sandbox, whose only program is the kernel (`python nbarchive_ipykernel_launcher.py
  -f ...`, see kernel_launcher.py), connects to the kernel's IPC sockets from outside, and runs nbclient there.
  The executed notebook, the status, the output size and the peak memory are built in the collector's memory
  from the kernel protocol and handed to the worker through an anonymous file; nothing the sandbox can write is
  ever read back as a result.
- The sandbox sees a generated /etc/passwd, /usr (with the /bin, /lib links), the kernel environment read-only,
  the kernel's start-up file (kernel_startup.py) read-only, a folder for the kernel's sockets holding the
  connection file (the kernel needs its key, and older ipykernels rewrite the file; the kernel is the untrusted
  party anyway, and nothing on the host reads the folder back but the sockets), the staged working
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
import shutil
import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from repository.runners.base import Outcome, RunResult, RunSpec, SandboxLimits
from repository.runners.sandbox import KernelRun, KernelView, SandboxUnavailable, run_kernel, run_uid, tmp_mounts

__all__ = ["LocalSandboxRunner", "SandboxUnavailable", "interpret_driver_status", "result_from_kernel_run"]

KERNEL_ENV_MOUNT = "/opt/kernel-env"
KERNEL_ISOLATION = ("the kernel alone in bubblewrap (own user, PID, mount and network namespaces, an unprivileged "
                    "uid, rlimits); nbclient outside it, in the worker")


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
        kernel_run = run_kernel(spec, self._view(spec.limits), run_uid(self.uid_first, self.uid_count))
        return result_from_kernel_run(kernel_run, spec, started_at=started_at, environment=self.environment())

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
            # As the notebook saw it: the host's path tells readers of the report how the server is laid out.
            "kernel_python": f"{KERNEL_ENV_MOUNT}/bin/{self.kernel_python.name}",
            "python_version": _kernel_python_version(self.kernel_python),
            "packages": _kernel_packages(self.kernel_python),
            "kernel_isolation": KERNEL_ISOLATION,
            "fallback": "kernel environment of this server, not the pinned image",
        }

    def _view(self, limits: SandboxLimits) -> KernelView:
        kernel_env = self.kernel_python.parent.parent
        root = [
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
            # fontconfig's configuration: without it every plotting notebook writes "Cannot load default config
            # file" to stderr and differs from its stored outputs.
            "--ro-bind-try", "/etc/fonts", "/etc/fonts",
            "--proc", "/proc", "--dev", "/dev", *tmp_mounts(limits),
            # At a fixed path, so that wherever the checkout lives it cannot be shadowed by /work; a venv
            # finds its prefix from where its python is started, so it works when moved.
            "--ro-bind", str(kernel_env), KERNEL_ENV_MOUNT,
        ]
        return KernelView(root_mounts=root, kernel_python=f"{KERNEL_ENV_MOUNT}/bin/{self.kernel_python.name}")


def result_from_kernel_run(kernel_run: KernelRun, spec: RunSpec, *, started_at: datetime, environment: dict,
                           environment_name: str = "The local runner's environment") -> RunResult:
    """The RunResult of a sandboxed kernel run (shared by the local and image runners, so they agree)."""
    status = kernel_run.status
    outcome, message, failed_cell = interpret_driver_status(
        status, returncode=status.get("sandbox_returncode"),
        timed_out=kernel_run.overstayed or status.get("outcome") == "timed_out", limits=spec.limits,
        executed=kernel_run.executed, logs=kernel_run.logs, environment_name=environment_name)
    peak_memory = status.get("peak_memory_bytes")
    return RunResult(
        outcome=outcome, message=message, executed_notebook=kernel_run.executed, logs=kernel_run.logs,
        started_at=started_at, finished_at=datetime.now(UTC),
        peak_memory_bytes=peak_memory if isinstance(peak_memory, int) else None, failed_cell_index=failed_cell,
        environment=environment,
    )


def interpret_driver_status(status: dict, *, returncode, timed_out: bool, limits, executed, logs: str,
                            environment_name: str = "The local runner's environment") -> tuple[str, str, int | None]:
    """Outcome, message and failed cell from a run's status (the collector's, see kernel_collector.py, or the
    GitLab job's status.json written by repository/gitlab/job.py) and what the process did. Shared by every runner, so
    their messages agree."""
    cell = status.get("cell_index") if isinstance(status.get("cell_index"), int) else None
    where = f"cell {cell}" if cell is not None else "the notebook"
    outcome = status.get("outcome")
    if timed_out:
        message = f"The notebook ran longer than {limits.notebook_timeout_seconds} s and was stopped."
        return Outcome.TIMED_OUT, message, cell
    if outcome == "completed" and executed is not None:
        return Outcome.COMPLETED, "The notebook ran to the end.", None
    if outcome == "cell_timeout":
        return Outcome.TIMED_OUT, f"{where.capitalize()} ran longer than {limits.cell_timeout_seconds} s.", cell
    if outcome == "output_limit":
        return Outcome.RESOURCE_LIMIT, f"The outputs grew past the limit of {limits.max_output_mb} MB at {where}.", cell
    if outcome == "collector_memory":
        return Outcome.RESOURCE_LIMIT, (f"The outputs of {where} needed more memory to read than a run may use, "
                                        f"although they were under the output limit of {limits.max_output_mb} MB "
                                        "(values that expand when read, such as millions of tiny JSON objects)."), cell
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
    if outcome == "unsupported_image":  # the GitLab job found the image without what its collector needs
        detail = str(status.get("message", "")).strip()[:1000] or "unsupported image"
        return Outcome.UNSUPPORTED_IMAGE, detail[:1].upper() + detail[1:].rstrip(".") + ".", None
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
