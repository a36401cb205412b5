"""Looking inside an unpacked image: which Python runs kernels there, its version and its packages.

The image decides where Python is: the directories of its config's PATH, in order, then /opt/conda/bin
(docker-stacks images keep it there). Each candidate is run inside the image's root filesystem under bubblewrap,
with no network and as an unprivileged uid, the same way a notebook will run; the first one that imports ipykernel
is the image's kernel Python. The result is kept beside the image (it depends only on the digest).

`sandbox_mounts(rootfs)` gives the bwrap arguments that present an unpacked root filesystem as `/`, read-only;
`run_in_image` runs one command that way (the runner adds its own binds, limits and uid handling on top).
"""

import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from repository.errors import ImageToolsMissing, ImageUnavailable
from repository.runners.images.cache import CachedImage
from repository.runners.sandbox_process import read_bwrap_status
from repository.runners.sandbox_start import SANDBOX_TOOL_PREFIXES

PYTHON_NAMES = ("python3", "python")
EXTRA_PLACES = ("/opt/conda/bin",)
# Provided fresh by bwrap, never taken from the image.
FRESH_TOP_LEVEL = ("proc", "dev", "tmp", "sys", "run")
SANDBOX_DEFAULTS = {"HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
INSPECTION_FILE = "inspection.json"
INSPECTION_FORMAT = 1
MARKER = "NBARCHIVE-INSPECTION "
# What is kept of a command's stdout and of its stderr (a probe prints a few kB; a hostile image's Python could
# print for the whole timeout); past it the command is stopped.
OUTPUT_LIMIT_BYTES = 4 * 1024 * 1024
PROBE = (
    "import sys, json\n"
    "out = {'executable': sys.executable, 'version': sys.version.split()[0]}\n"
    "try:\n"
    "    import ipykernel\n"
    "    out['ipykernel'] = getattr(ipykernel, '__version__', '') or '?'\n"
    "except Exception as exc:\n"
    "    out['error'] = type(exc).__name__ + ': ' + str(exc)\n"
    "packages = {}\n"
    "try:\n"
    "    import importlib.metadata as metadata\n"
    "    for dist in metadata.distributions():\n"
    "        name = dist.metadata['Name'] if dist.metadata else None\n"
    "        if name:\n"
    "            packages[name] = dist.version\n"
    "except Exception:\n"
    "    pass\n"
    "out['packages'] = packages\n"
    f"print({MARKER!r} + json.dumps(out))\n"
)


@dataclass(frozen=True)
class ImageInspection:
    python: str = ""                 # path inside the image, e.g. /usr/bin/python3 or /opt/conda/bin/python
    python_version: str = ""
    ipykernel_version: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    looked_in: tuple[str, ...] = ()  # the directories searched, in order
    problem: str = ""                # set when the image cannot run a kernel: "unsupported image: ..."

    @property
    def supported(self) -> bool:
        return not self.problem

    @property
    def has_nbclient(self) -> bool:
        return any(name.lower() == "nbclient" for name in self.packages)

    def to_dict(self) -> dict:
        return {**asdict(self), "looked_in": list(self.looked_in)}

    @classmethod
    def from_dict(cls, data: dict) -> "ImageInspection":
        return cls(**{**data, "looked_in": tuple(data.get("looked_in", ()))})


def inspect_image(image: CachedImage, *, uid: int | None = None) -> ImageInspection:
    """The image's kernel Python and packages (cached beside the image). Hold a lease on the image meanwhile."""
    cached = image.path / INSPECTION_FILE
    try:
        data = json.loads(cached.read_text())
        if data.pop("format", None) == INSPECTION_FORMAT:
            return ImageInspection.from_dict(data)
    except (OSError, ValueError, TypeError):
        pass
    inspection = _inspect(image, uid=uid)
    partial = cached.with_name(f".{INSPECTION_FILE}.{os.getpid()}")
    partial.write_text(json.dumps({"format": INSPECTION_FORMAT, **inspection.to_dict()}, indent=2))
    partial.rename(cached)
    return inspection


def search_path(image: CachedImage) -> tuple[str, ...]:
    places = []
    for directory in [*image.config.path.split(":"), *EXTRA_PLACES]:
        directory = "/" + directory.strip("/") if directory else ""
        if directory and directory not in places:
            places.append(directory)
    return tuple(places)


def candidate_pythons(image: CachedImage) -> list[str]:
    """Paths inside the image where a Python exists (a file or a link; the sandbox resolves links)."""
    return [f"{directory}/{name}" for directory in search_path(image) for name in PYTHON_NAMES
            if os.path.lexists(image.rootfs / directory.lstrip("/") / name)]


def _inspect(image: CachedImage, *, uid: int | None) -> ImageInspection:
    """Raises ImageUnavailable when the sandbox itself cannot start (the operator's problem, not the image's)."""
    blocked = unreachable_ancestor(image.rootfs)
    if blocked is not None:
        raise ImageUnavailable(f"The sandbox uid cannot reach {image.rootfs}: {blocked} is not searchable by "
                               "others (chmod o+x it, or set IMAGE_CACHE_DIR to a folder under one that is).")
    if shutil.which("bwrap") is None:
        raise ImageToolsMissing("bubblewrap (bwrap) is not installed; it runs everything inside an image.")
    places = search_path(image)
    tried = []
    for python in candidate_pythons(image):
        result = run_in_image(image, [python, "-c", PROBE], uid=uid, timeout=120)
        found = _parse_probe(result.stdout)
        if found is None and result.sandbox_failed and not _could_not_execute(result.stderr):
            raise ImageUnavailable(f"The sandbox could not start in {image.reference}: {_tail(result.stderr)}")
        if found is None:
            tried.append(f"{python} did not run ({_tail(result.stderr)})")
        elif "ipykernel" not in found:
            tried.append(f"{python} (Python {found.get('version')}) has no ipykernel ({found.get('error', '')})")
        else:
            packages = dict(sorted(found.get("packages", {}).items(), key=lambda item: item[0].lower()))
            return ImageInspection(python=python, python_version=found.get("version", ""),
                                   ipykernel_version=found["ipykernel"], packages=packages, looked_in=places)
    problem = f"unsupported image: no python with ipykernel found (looked in {', '.join(places)})"
    if tried:
        problem += "; " + "; ".join(tried)
    return ImageInspection(looked_in=places, problem=problem)


def sandbox_mounts(rootfs: Path, *, shm_mb: int = 64, tmp_mb: int = 256) -> list[str]:
    """bwrap arguments presenting `rootfs` as `/`: each top-level entry bound read-only (symlinks kept as links),
    fresh /proc, /dev, a size-limited /tmp and /dev/shm. Add further binds, then `--remount-ro /`."""
    arguments = []
    for entry in sorted(os.scandir(rootfs), key=lambda item: item.name):
        if entry.name in FRESH_TOP_LEVEL:
            continue
        if entry.is_symlink():
            arguments += ["--symlink", os.readlink(entry.path), f"/{entry.name}"]
        elif entry.is_dir() or entry.is_file():
            arguments += ["--ro-bind", entry.path, f"/{entry.name}"]
    arguments += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp",
                  "--size", str(shm_mb * 1024 * 1024), "--tmpfs", "/dev/shm"]
    return arguments


def sandbox_environment(image: CachedImage, **overrides: str) -> dict[str, str]:
    """The environment a process in the image starts with: the image's own Env (its PATH first of all), our
    defaults where it sets nothing, then the caller's overrides. Nothing of the worker's environment."""
    return {**SANDBOX_DEFAULTS, **image.config.env, "PATH": image.config.path, **overrides}


class ImageCommandResult(subprocess.CompletedProcess):
    """A command's result, its stdout and stderr each cut at its output limit (returncode -9 when it was stopped
    at its timeout or there, stderr then ends saying which); `sandbox_failed` is bwrap's own
    word (its --json-status-fd) that it ended without executing the command: its set-up failed, or it could not
    execute the command (then its stderr says "execvp"), or setpriv/env in front of it failed. Nothing of the
    image ran then, so nothing of the image wrote its stderr."""

    def __init__(self, args, returncode, stdout, stderr, *, sandbox_failed: bool):
        super().__init__(args, returncode, stdout, stderr)
        self.sandbox_failed = sandbox_failed


def run_in_image(image: CachedImage, argv: list[str], *, uid: int | None = None, timeout: float = 60,
                 memory_mb: int = 2048, environment: dict[str, str] | None = None,
                 output_limit_bytes: int = OUTPUT_LIMIT_BYTES) -> ImageCommandResult:
    """Run argv inside the image: no network, new namespaces, all capabilities dropped, an unprivileged uid
    (a random one of RUNNER_SANDBOX_UID_* when the worker is root), the image read-only."""
    uid = uid if uid is not None else _sandbox_uid()
    environment = environment if environment is not None else sandbox_environment(image)
    status_read, status_write = os.pipe()
    command = ["bwrap", "--json-status-fd", str(status_write), "--unshare-all", "--unshare-user",
               "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "nbarchive",
               "--uid", str(uid), "--gid", str(uid),
               *sandbox_mounts(image.rootfs), "--remount-ro", "/", "--chdir", "/tmp", "--clearenv"]
    # The image's variables are set inside the sandbox only (--setenv): on `env` they would also steer bwrap
    # itself on the host (LD_PRELOAD, LD_LIBRARY_PATH).
    for key, value in environment.items():
        command += ["--setenv", key, value]
    command = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", *command, "--", *argv]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]

    def limit_memory():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024**2, memory_mb * 1024**2))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={}, preexec_fn=limit_memory,  # noqa: PLW1509 - no thread of ours in between
                                   start_new_session=True, pass_fds=(status_write,))
    finally:
        os.close(status_write)
    with process:
        output, errors, ending = _read_capped(process, timeout, output_limit_bytes)
        if ending:
            _kill_group(process.pid)
        process.wait()
    reported = read_bwrap_status(status_read)
    if ending:
        errors += b"\n" + ending
    # Killed by us (timeout, output cap), it ran: the image's Python was running, not bwrap failing to start.
    return ImageCommandResult(command, -9 if ending else process.returncode, output.decode(errors="replace"),
                              errors.decode(errors="replace").strip(),
                              sandbox_failed=not ending and reported["exit_code"] is None)


def _read_capped(process: subprocess.Popen, timeout: float, limit: int) -> tuple[bytes, bytes, bytes]:
    """The command's stdout and stderr as they come, each at most `limit` bytes, until both end; and why the
    command must be stopped (b"" when it need not): its timeout, or output past the cap."""
    deadline = time.monotonic() + timeout
    kept = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    with selectors.DefaultSelector() as selector:
        for descriptor in kept:
            selector.register(descriptor, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(kept[process.stdout.fileno()]), bytes(kept[process.stderr.fileno()]), \
                    f"timed out after {timeout:g} s".encode()
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                kept[key.fd] += chunk
                if len(kept[key.fd]) > limit:
                    del kept[key.fd][limit:]
                    return bytes(kept[process.stdout.fileno()]), bytes(kept[process.stderr.fileno()]), \
                        f"stopped: more than {limit} bytes of output".encode()
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:  # it closed its output but runs on
        return bytes(kept[process.stdout.fileno()]), bytes(kept[process.stderr.fileno()]), \
            f"timed out after {timeout:g} s".encode()
    return bytes(kept[process.stdout.fileno()]), bytes(kept[process.stderr.fileno()]), b""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def unreachable_ancestor(path: Path) -> Path | None:
    """The first folder on the way to `path` that a sandbox uid (an "other" user when the worker is root) cannot
    pass through, or None. bwrap runs as that uid and must reach what it binds."""
    if os.geteuid() != 0:
        return None
    for folder in [*reversed(Path(path).parents), Path(path)]:
        try:
            if not folder.stat().st_mode & 0o001:
                return folder
        except FileNotFoundError:
            return None
    return None


def _sandbox_uid() -> int:
    if os.geteuid() != 0:
        return os.geteuid()
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        first, count = settings.RUNNER_SANDBOX_UID_FIRST, settings.RUNNER_SANDBOX_UID_COUNT
    except ImproperlyConfigured:  # used outside Django (a script, another worker process in the tests)
        first, count = 200_000, 60_000
    return first + secrets.randbelow(count)


def _could_not_execute(stderr: str) -> bool:
    # bwrap set the sandbox up but could not execute the candidate (a dangling link): the image's matter.
    said = [line for line in (stderr or "").splitlines() if line.startswith(SANDBOX_TOOL_PREFIXES)]
    return bool(said) and said[-1].startswith("bwrap: execvp")


def _parse_probe(stdout: str) -> dict | None:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            try:
                return json.loads(line[len(MARKER):])
            except ValueError:
                return None
    return None


def _tail(text: str) -> str:
    text = " ".join((text or "").split())
    return text[-300:] or "no output"
