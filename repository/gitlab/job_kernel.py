"""How the GitLab job (job.py, shipped beside it as `.nbarchive/job_kernel.py`) runs the kernel and the collector,
and how far it keeps them apart: see job.py's docstring for the three `kernel_isolation` levels. Standard library
only; runs inside the CI job. The kernel's environment comes from the manifest (`kernel_env`, `kernel_folders`:
written by repository/gitlab/ci.py from the local sandbox's SANDBOX_ENV, so every runner gives the kernel the same).
"""

import ctypes
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTOR = os.path.join(HERE, "kernel_collector.py")
KERNEL_STARTUP = os.path.join(HERE, "kernel_startup.py")
KERNEL_LAUNCHER = os.path.join(HERE, "kernel_launcher.py")
# Its copy in the run folder: process listings still say ipykernel_launcher, as the local sandbox's do.
LAUNCHER_NAME = "nbarchive_ipykernel_launcher.py"
MB = 1024 * 1024
LOG_LIMIT_BYTES = 256 * 1024
STATUS_LIMIT_BYTES = 64 * 1024
# In the kernel's own socket folder: an older ipykernel (6.17, Debian 12's) rewrites it at start, replacing it, which
# a file in the root-owned run folder would refuse. The collector never reads it back.
CONNECTION_FILE = os.path.join("ipc", "kernel.json")
KERNEL_PORTS = {"shell": 1, "iopub": 2, "stdin": 3, "control": 4, "hb": 5}  # with IPC, socket names `<ip>-<port>`
STARTUP_TIMEOUT_SECONDS = 120
COLLECTOR_GRACE_SECONDS = 30
COLLECTOR_BASE_MEMORY_MB = 1024
KERNEL_UID_FIRST = 400_000  # a fresh uid per run, unlikely to be anyone's on the CI host
KERNEL_UID_COUNT = 100_000
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
# What the job itself needs from the image's Python: the kernel, and the collector that drives it from here.
KERNEL_MODULES = ("ipykernel",)
COLLECTOR_MODULES = ("nbclient", "nbformat", "jupyter_client", "zmq")
VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
KEPT_FROM_IMAGE = ("PATH", "HOME", "CONDA_DIR", "CONDA_PREFIX", "VIRTUAL_ENV", "JUPYTER_PATH", "LD_LIBRARY_PATH")
# Run by the kernel's first process as root: drop to the kernel's uid for good, then exec the rest of the command.
DROP_UID = ("import ctypes, os, sys; uid = int(sys.argv[1]); os.setgroups([]); os.setresgid(uid, uid, uid); "
            "os.setresuid(uid, uid, uid); ctypes.CDLL(None).prctl(38, 1, 0, 0, 0); "
            "os.execvp(sys.argv[2], sys.argv[2:])")
# The collector as the local runner runs it, but not dumpable: a process of the same uid cannot ptrace it.
RUN_COLLECTOR = ("import ctypes, runpy, sys; ctypes.CDLL(None).prctl(4, 0, 0, 0, 0); "
                 "runpy.run_path(sys.argv[1], run_name='__main__')")


# --- what the image offers -------------------------------------------------------------------------------------
def missing_modules() -> list[str]:
    """The modules of KERNEL_MODULES and COLLECTOR_MODULES this Python (the image's) cannot import."""
    return [name for name in (*KERNEL_MODULES, *COLLECTOR_MODULES) if importlib.util.find_spec(name) is None]


def kernel_environment(manifest: dict, isolation: str, run_dir: str) -> dict[str, str]:
    """The kernel's environment: the image's PATH and the like, the manifest's fixed values, its folder variables
    under the kernel's own home, and that home as HOME when the kernel has a uid of its own (with a shared uid the
    image's HOME stays: it is the job user's, and may hold what the image installed there). ValueError for a
    manifest that is not shaped as ci.py writes it."""
    fixed, folders = manifest.get("kernel_env"), manifest.get("kernel_folders")
    for mapping in (fixed, folders):
        if not isinstance(mapping, dict) or not all(
                isinstance(key, str) and VARIABLE_NAME.fullmatch(key) and isinstance(value, str)
                for key, value in mapping.items()):
            raise ValueError("the manifest's kernel_env and kernel_folders must map variable names to strings")
    if any(value.startswith("/") or ".." in value.split("/") for value in folders.values()):
        raise ValueError("the manifest's kernel_folders must be paths inside the kernel's home")
    home = os.path.join(run_dir, "home")
    environment = {key: os.environ[key] for key in KEPT_FROM_IMAGE if key in os.environ}
    environment.update(fixed)
    environment.update({key: os.path.join(home, relative) for key, relative in folders.items()})
    if isolation != "shared-uid":
        environment["HOME"] = home
    return environment


# --- how far the kernel can be kept from the collector ---------------------------------------------------------
def prctl(option: int, value: int) -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def as_uid(uid: int, action) -> bool:
    """Run `action()` in a child process that has become `uid` for good; True when it got there and succeeded."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            action()
            code = 0
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def choose_isolation() -> tuple[str, int]:
    """(kernel_isolation, the kernel's uid)."""
    if os.geteuid() != 0:
        return "shared-uid", os.geteuid()
    uid = KERNEL_UID_FIRST + secrets.randbelow(KERNEL_UID_COUNT)
    if not as_uid(uid, lambda: None):  # root without CAP_SETUID (a rootless or restricted container)
        return "shared-uid", 0
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "true"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                                  check=False).returncode == 0:
        return "separate-uid+pidns", uid
    return "separate-uid", uid


def kernel_command(isolation: str, uid: int, run_dir: str, environment: dict[str, str]) -> list[str]:
    kernel = ["env", "-i", *(f"{key}={value}" for key, value in environment.items()),
              # A script in the run folder, not `-m ipykernel_launcher`: the kernel starts in the notebook's folder,
              # whose uploaded ipykernel_launcher.py or zmq.py would run first (see kernel_launcher.py).
              sys.executable, os.path.join(run_dir, LAUNCHER_NAME), "-f", os.path.join(run_dir, CONNECTION_FILE),
              "--HistoryManager.hist_file=:memory:", "--IPKernelApp.parent_handle=1",
              f"--IPKernelApp.exec_files={os.path.join(run_dir, 'startup.py')}"]
    if isolation == "shared-uid":
        return kernel
    command = [sys.executable, "-I", "-c", DROP_UID, str(uid), *kernel]
    if isolation == "separate-uid+pidns":
        command = [shutil.which("unshare") or "unshare", "--pid", "--fork", "--mount-proc", *command]
    return command


def prepare_run_dir(isolation: str, uid: int, key: str, work: str) -> str:
    """A private folder: the start-up file and the launcher (readable by the kernel), its socket folder (with the
    connection file) and home (the kernel's own). The working folder becomes the kernel's; `.nbarchive/` and
    `out/` stay the job's."""
    run_dir = tempfile.mkdtemp(prefix="nbarchive-kernel-")
    for name in ("ipc", "home"):
        os.mkdir(os.path.join(run_dir, name), 0o700)
    info = {"transport": "ipc", "ip": os.path.join(run_dir, "ipc", "kernel"), "key": key,
            "signature_scheme": "hmac-sha256", "kernel_name": "python3",
            **{f"{channel}_port": port for channel, port in KERNEL_PORTS.items()}}
    _write_private(os.path.join(run_dir, CONNECTION_FILE), json.dumps(info).encode("ascii"), 0o400)
    for source, name in ((KERNEL_STARTUP, "startup.py"), (KERNEL_LAUNCHER, LAUNCHER_NAME)):
        with open(source, "rb") as handle:
            _write_private(os.path.join(run_dir, name), handle.read(), 0o444)
    if isolation != "shared-uid":
        os.chmod(run_dir, 0o711)
        for name in ("ipc", "home", CONNECTION_FILE):
            os.chown(os.path.join(run_dir, name), uid, uid)
        for root, dirs, files in os.walk(work):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), uid, uid)
        os.chown(work, uid, uid)
    return run_dir


def _write_private(path: str, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


# --- the run ---------------------------------------------------------------------------------------------------
def collector_spec(manifest: dict, notebook_text: str, command: list[str], run_dir: str, key: str,
                    isolation: str) -> dict:
    limits = manifest.get("limits") if isinstance(manifest.get("limits"), dict) else {}
    max_output = int(manifest["max_output_bytes"])
    rlimits = {"RLIMIT_CORE": 0}
    if isinstance(limits.get("memory_mb"), int):
        rlimits["RLIMIT_AS"] = limits["memory_mb"] * MB
    if isolation != "shared-uid" and isinstance(limits.get("max_processes"), int):
        rlimits["RLIMIT_NPROC"] = limits["max_processes"]  # counts the kernel's uid only when it has its own
    notebook_timeout = int(manifest.get("notebook_timeout_seconds", 1800))
    return {
        "notebook": notebook_text, "command": command, "ipc_prefix": os.path.join(run_dir, "ipc", "kernel"),
        "key": key, "ports": KERNEL_PORTS, "cell_timeout_seconds": int(manifest["cell_timeout_seconds"]),
        "notebook_timeout_seconds": notebook_timeout,
        "startup_timeout_seconds": min(STARTUP_TIMEOUT_SECONDS, notebook_timeout),
        "max_output_bytes": max_output,
        "collector_memory_bytes": COLLECTOR_BASE_MEMORY_MB * MB + 8 * max_output + 4 * len(notebook_text),
        "rlimits": rlimits,
    }


def collect(spec: dict, cwd: str) -> tuple[dict, bytes | None, bytes]:
    """Run the collector: (status, executed notebook, log). Its files are anonymous: no path leads to them."""
    with tempfile.TemporaryFile() as spec_file, tempfile.TemporaryFile() as result, \
            tempfile.TemporaryFile() as log:
        spec_file.write(json.dumps(spec).encode("utf-8"))
        spec_file.seek(0)
        environment = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "C.UTF-8",
                       "JUPYTER_PLATFORM_DIRS": "1", "MALLOC_ARENA_MAX": "2"}
        process = subprocess.Popen([sys.executable, "-I", "-c", RUN_COLLECTOR, COLLECTOR], stdin=spec_file,
                                   stdout=result, stderr=log, env=environment, cwd=cwd, start_new_session=True,
                                   close_fds=True)
        try:
            process.wait(timeout=spec["notebook_timeout_seconds"] + COLLECTOR_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.seek(0)
        logs = log.read(LOG_LIMIT_BYTES)
        result.seek(0)
        try:
            status = json.loads(result.readline(STATUS_LIMIT_BYTES))
        except ValueError:
            status = None
        if not isinstance(status, dict) or not isinstance(status.get("outcome"), str):
            return ({"outcome": "driver_error", "message": f"the collector ended (exit code {process.returncode}) "
                                                           "without a result (is nbclient in the image?)"},
                    None, logs)
        cap = 2 * len(spec["notebook"].encode("utf-8")) + spec["max_output_bytes"] + MB
        executed = result.read(cap + 1) or None
        return status, (executed if executed is not None and len(executed) <= cap else None), logs


# --- after the run ---------------------------------------------------------------------------------------------
def _processes_of(uid: int, spared: set[int]) -> list[int]:
    """Live processes whose real or effective uid is `uid`, except `spared` ones."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spared:
            continue
        try:
            with open(f"/proc/{name}/status", encoding="ascii", errors="replace") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            continue  # gone while we looked
        uids = fields.get("Uid", "").split()
        if fields.get("State", "").strip().startswith(("Z", "X")) or uid not in {int(u) for u in uids[:2]}:
            continue
        found.append(int(name))
    return found


def _ancestors() -> set[int]:
    """This process and its ancestors (the job's shell): never killed, they are the job."""
    pids, pid = {1}, os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                pid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def _kill_everything_visible() -> None:
    try:
        os.kill(-1, signal.SIGKILL)  # every process this uid may signal, except the caller
    except ProcessLookupError:
        pass


def end_leftovers(isolation: str, uid: int) -> bool:
    """Kill every process of the kernel's uid (a notebook can start detached ones); True when none is left."""
    spared = _ancestors()
    for _ in range(100):
        left = _processes_of(uid, spared)
        if not left:
            return True
        if isolation == "shared-uid":  # our own uid: spare the job, stop the rest before killing (no fork races)
            for sent in (signal.SIGSTOP, signal.SIGKILL):
                for pid in left:
                    try:
                        os.kill(pid, sent)
                    except OSError:
                        pass
        else:
            as_uid(uid, _kill_everything_visible)
        time.sleep(0.05)
    return False
