"""skopeo and umoci: the only code that runs them, and the translation of their failures into our errors.

The tools run with a small environment of their own (PATH, a private HOME and TMPDIR, proxy variables), so they
read no credentials from the worker's home (~/.docker/config.json, $XDG_RUNTIME_DIR/containers/auth.json):
credentials come only from the auth file named in settings, passed with `--authfile`, and never appear in an
argument or an environment variable. Registries listed as insecure are reached over plain HTTP
(`--tls-verify=false`); every other one over HTTPS with certificate verification, whatever registries.conf says.
Signature policy: accept anything, because we verify the pinned digest ourselves (pull.py).
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repository.errors import (
    ImageAccessDenied,
    ImageDigestMismatch,
    ImageNotFound,
    ImagePullTimeout,
    ImageRegistryUnreachable,
    ImageToolsMissing,
    ImageUnavailable,
)
from repository.runners.images.reference import ImageReference

TOOLS = ("skopeo", "umoci")
LAYOUT_TAG = "img"
STDERR_LIMIT = 64 * 1024
TICK_SECONDS = 0.5
PASSED_ENVIRONMENT = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
# How skopeo (containers/image) words each failure, most specific first.
_FAILURES = (
    (("manifest unknown", "name unknown", "not found", "404"), ImageNotFound),
    (("unauthorized", "authentication required", "denied", "401", "403"), ImageAccessDenied),
    (("digest did not match", "does not match digest", "digest mismatch", "manifest does not match"),
     ImageDigestMismatch),
    (("connection refused", "no such host", "i/o timeout", "dial tcp", "network is unreachable", "x509",
      "tls:", "http response to https client", "connection reset", "eof", "502", "503", "504"),
     ImageRegistryUnreachable),
)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@dataclass(frozen=True)
class RegistryAccess:
    """How registries are reached: which ones over plain HTTP, and the docker-style auth file (or none)."""

    insecure_registries: frozenset[str] = frozenset()
    auth_file: str = ""

    def tls_verify(self, registry: str) -> bool:
        return registry.lower() not in self.insecure_registries


class ImageTools:
    def __init__(self, access: RegistryAccess, work_dir: Path):
        self.access = access
        self.work_dir = work_dir

    def check_available(self) -> None:
        missing = missing_tools()
        if missing:
            raise ImageToolsMissing(f"{' and '.join(missing)} not found on PATH: install the Debian packages "
                                    f"{' '.join(missing)} to run notebooks in their images.")

    # --- skopeo ------------------------------------------------------------------------------------------
    def inspect_raw(self, ref: ImageReference, *, digest: str, deadline: float, limit: str) -> bytes:
        """The raw bytes of the manifest (or image index) `digest` of ref's repository, as the registry sends them."""
        command = [*self._skopeo(), "inspect", "--raw", *self._registry_flags(ref, "--tls-verify"),
                   f"docker://{ref.with_digest(digest)}"]
        return self._run(command, deadline=deadline, limit=limit, ref=ref)

    def copy(self, ref: ImageReference, layout: Path, *, deadline: float, limit: str,
             on_tick: Callable[[], None] | None = None) -> None:
        """Copy the image by digest into an OCI layout (tag LAYOUT_TAG); for an index, this machine's platform."""
        command = [*self._skopeo(), "copy", "--quiet", *self._registry_flags(ref, "--src-tls-verify"),
                   f"docker://{ref}", f"oci:{layout}:{LAYOUT_TAG}"]
        self._run(command, deadline=deadline, limit=limit, ref=ref, on_tick=on_tick)

    def _skopeo(self) -> list[str]:
        return ["skopeo", "--policy", str(self._policy_file())]

    def _registry_flags(self, ref: ImageReference, tls_flag: str) -> list[str]:
        flags = [f"{tls_flag}={'true' if self.access.tls_verify(ref.registry) else 'false'}"]
        if self.access.auth_file:
            flags.append(f"--authfile={self.access.auth_file}")
        return flags

    def _policy_file(self) -> Path:
        policy = self.work_dir / "policy.json"
        if not policy.exists():
            policy.parent.mkdir(parents=True, exist_ok=True)
            policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        return policy

    # --- umoci -------------------------------------------------------------------------------------------
    def unpack(self, layout: Path, bundle: Path, *, deadline: float, limit: str,
               on_tick: Callable[[], None] | None = None) -> None:
        """Unpack the layout's image into bundle/rootfs: as root with the image's owners and modes, else rootless.
        An exception raised by on_tick stops umoci."""
        rootless = ["--rootless"] if os.geteuid() != 0 else []
        command = ["umoci", "unpack", *rootless, "--image", f"{layout}:{LAYOUT_TAG}", str(bundle)]
        self._run(command, deadline=deadline, limit=limit, ref=None, on_tick=on_tick)

    # --- running -----------------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        home = self.work_dir / "home"
        tmp = self.work_dir / "tmp"
        for folder in (home, tmp):
            folder.mkdir(parents=True, exist_ok=True)
        environment = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": str(home),
                       "TMPDIR": str(tmp), "LANG": "C.UTF-8"}
        environment.update({key: os.environ[key] for key in PASSED_ENVIRONMENT if key in os.environ})
        return environment

    def _run(self, command: list[str], *, deadline: float, limit: str, ref: ImageReference | None,
             on_tick: Callable[[], None] | None = None) -> bytes:
        self.check_available()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                       env=self.environment(), start_new_session=True, close_fds=True)
            try:
                while True:
                    try:
                        process.wait(timeout=max(0.0, min(TICK_SECONDS, deadline - time.monotonic())))
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if time.monotonic() >= deadline:
                        _kill_group(process)
                        what = f"Pulling {ref}" if ref else "Unpacking the image"
                        raise ImagePullTimeout(f"{what} did not finish within {limit}; {command[0]} was stopped.")
                    if on_tick:
                        on_tick()
            finally:
                if process.poll() is None:
                    _kill_group(process)
            err.seek(0)
            stderr = err.read(STDERR_LIMIT).decode("utf-8", errors="replace").strip()
            if process.returncode != 0:
                raise translate_failure(command[0], stderr, ref)
            out.seek(0)
            return out.read()


def translate_failure(tool: str, stderr: str, ref: ImageReference | None) -> ImageUnavailable:
    """The project error a failed skopeo or umoci call stands for, with the tool's own words for the operator."""
    lowered = stderr.lower()
    tail = stderr[-600:]
    if tool == "skopeo" and ref is not None:
        for needles, error in _FAILURES:
            if any(needle in lowered for needle in needles):
                hint = ""
                if error is ImageRegistryUnreachable and ("x509" in lowered or "https client" in lowered):
                    hint = (f" If {ref.registry} serves plain HTTP on a private network, list it in "
                            "IMAGE_INSECURE_REGISTRIES.")
                return error(f"{error.title}: {ref} ({tail}).{hint}")
    return ImageUnavailable(f"{tool} failed{f' for {ref}' if ref else ''}: {tail}")


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
