"""The verification job's script. Runs INSIDE the GitLab CI job, in the version's pinned image, with its Python.

The GitLab runner commits this file as `.nbarchive/job.py`, the local runner's collector, kernel start-up file and
kernel launcher as `.nbarchive/kernel_collector.py`, `.nbarchive/kernel_startup.py` and
`.nbarchive/kernel_launcher.py` (the kernel starts from its copy in the job's run folder, never from the notebook's
folder, so an uploaded `ipykernel_launcher.py` cannot replace it), the notebook under `work/` and
`.nbarchive/manifest.json`; the CI file's only script line is `python3 .nbarchive/job.py`, so no value of the
submitter ever reaches a shell. Everything the job needs (the notebook's path, the inputs, the limits) it reads
from the manifest, as data. It imports nothing of nbarchive or Django.

What the image must offer: a `python3` on its PATH with ipykernel (the kernel) AND nbclient, nbformat,
jupyter_client and pyzmq (the collector). Unlike RUNNER=image, whose collector runs in the worker and asks only
ipykernel of the image, here the collector shares the CI job, so it runs with the image's Python; nothing is
installed at run time (the job would depend on PyPI and change the image it verifies). Jupyter images carry all of
them (docker-stacks; Debian: python3-nbclient beside python3-ipykernel). An image without them gets the verdict
`unsupported_image`, naming what is missing, before anything is fetched. Steps:
1. fetch every input of the manifest from its short-lived nbarchive URL into `work/<target_path>`, checking size
   and sha256 (a path that would leave `work/` is refused);
2. run the notebook as the local runner does: the collector (nbclient) here, the kernel alone in a process of its
   own with a scrubbed environment (no CI_JOB_TOKEN or other CI variable), the two joined by the kernel protocol
   over IPC sockets; the executed notebook and the status are built in the collector's memory, never read back
   from a file the kernel could write;
3. end every process the kernel left, then write out/status.json, out/executed.ipynb, out/driver.log and
   out/environment.json (Python, packages and `kernel_isolation`).

Driver and notebook share the CI job, so how far the kernel is kept from the collector depends on what the job
may do; `kernel_isolation` says which, and the run report shows it:
- `separate-uid+pidns`: the job runs as root and may make namespaces: the kernel runs under a fresh uid in its
  own PID namespace (`unshare --pid --fork --mount-proc`), which dies with it;
- `separate-uid`: the job runs as root (a Docker executor's default): the kernel runs under a fresh uid with
  no_new_privs; it cannot signal, ptrace or read the job or the collector, nor write `.nbarchive/` or `out/`
  (root's, 0700), and every process of its uid is killed (`kill(-1)` as that uid) before `out/` is written;
- `shared-uid`: the job cannot switch uid (a non-root image user such as docker-stacks' jovyan): the job and the
  collector make themselves non-dumpable (no ptrace, no /proc/<pid>/mem or environ for the notebook), and every
  other process of the uid is killed before `out/` is written. A notebook can still stop or kill the collector
  and write artifacts of its own (and make the job's own writes fail): nbarchive does not accept a favourable
  result from such a job unless the operator allows it (GITLAB_ALLOW_SHARED_UID), and the report warns.
The level nbarchive believes is the job log's first `nbarchive: kernel isolation: <level>` line, printed before
anything of the notebook is fetched or run, never the artifacts' copy (repository/gitlab/trust.py).
The exit code is 0 when the notebook ran to the end and 1 otherwise, so GitLab shows a failed run in red;
nbarchive reads the artifacts either way (`artifacts: when: always`).
"""

import hashlib
import json
import os
import secrets
import shutil
import sys
import urllib.request

import job_kernel  # .nbarchive/job_kernel.py, beside this file (sys.path[0])

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.getcwd()  # the checkout (CI_PROJECT_DIR)
WORK = os.path.join(ROOT, "work")
OUT = os.path.join(ROOT, "out")
CHUNK = 1024 * 1024
FETCH_TIMEOUT_SECONDS = 60
LOG_TAIL_BYTES = 20_000


class FetchError(Exception):
    pass


def _inside(base: str, relative: str) -> str:
    """base/relative, refusing anything that is absolute, has '..' or ends outside base (also via a symlink)."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or "\\" in relative or any(p in ("", ".", "..") for p in parts):
        raise FetchError(f"the path {relative!r} is not a plain relative path")
    target = os.path.join(base, *parts)
    real_base, real_parent = os.path.realpath(base), os.path.realpath(os.path.dirname(target))
    if real_parent != real_base and not real_parent.startswith(real_base + os.sep):
        raise FetchError(f"the path {relative!r} leads outside the working folder")
    return target


def _fetch(item: dict) -> None:
    path, url, sha256, size = item["target_path"], item["url"], item["sha256"], int(item["size"])
    if not url.startswith(("https://", "http://")):
        raise FetchError(f"{path}: the manifest's URL is not http(s)")
    target = _inside(WORK, path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.lexists(target):
        raise FetchError(f"{path}: the path is already taken in the working folder")
    partial = target + ".part"
    digest = hashlib.sha256()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": "nbarchive-job/1", "Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response, open(partial, "wb") as out:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                received += len(chunk)
                if received > size:
                    raise FetchError(f"{path}: nbarchive sent more than the declared {size} bytes")
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:  # URLError and HTTPError are OSErrors
        raise FetchError(f"{path}: the download failed ({exc})") from exc
    if received != size or digest.hexdigest() != sha256:
        os.unlink(partial)
        raise FetchError(f"{path}: got {received} bytes with sha256 {digest.hexdigest()}, expected {size} bytes "
                         f"with sha256 {sha256}")
    os.chmod(partial, 0o444)
    os.replace(partial, target)
    print(f"fetched {path} ({size} bytes, sha256 verified)", flush=True)


def _describe_environment(isolation: str) -> dict:
    try:
        import importlib.metadata as metadata

        packages = {dist.metadata["Name"]: dist.version for dist in metadata.distributions() if dist.metadata["Name"]}
    except Exception:  # noqa: BLE001 - a description, never a reason to fail the run
        packages = {}
    return {"python_version": sys.version.split()[0], "packages": dict(sorted(packages.items())),
            "kernel_isolation": isolation}


def _guard_checkout() -> None:
    """The checkout may be world-writable (GitLab's Docker executor runs with umask 0000): make the folders the
    job reads and writes its own before the kernel exists, so no other uid can replace them or what is in them."""
    path = ROOT
    while path != os.path.dirname(path):
        try:
            mode = os.stat(path).st_mode
            if mode & 0o022 and not mode & 0o1000:  # a sticky folder (/tmp) protects its entries already
                os.chmod(path, mode & 0o7755)
        except OSError:
            pass  # not ours or read-only: nothing to do about it here
        path = os.path.dirname(path)
    os.chmod(HERE, 0o700)
    os.chmod(OUT, 0o700)


def _write_out(name: str, data: bytes) -> None:
    path = os.path.join(OUT, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def _finish(status: dict, executed: bytes | None, logs: bytes, environment: dict) -> int:
    if executed is not None:
        _write_out("executed.ipynb", executed)
    _write_out("driver.log", logs)
    _write_out("environment.json", json.dumps(environment).encode("utf-8"))
    _write_out("status.json", json.dumps(status).encode("utf-8"))
    sys.stdout.write(logs[-LOG_TAIL_BYTES:].decode("utf-8", errors="replace"))
    print(f"\nnbarchive: the notebook's run ended with '{status.get('outcome')}' "
          f"(kernel isolation: {environment['kernel_isolation']})", flush=True)
    return 0 if status.get("outcome") == "completed" else 1


def main() -> int:
    job_kernel.prctl(job_kernel.PR_SET_DUMPABLE, 0)
    os.makedirs(OUT, mode=0o700, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(HERE, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    isolation, uid = job_kernel.choose_isolation()
    # The line nbarchive believes (repository/gitlab/trust.py): the first of its kind in the job's log, printed
    # before anything of the notebook runs or is even fetched. environment.json's copy is only cross-checked.
    print(f"nbarchive: kernel isolation: {isolation}", flush=True)
    environment = _describe_environment(isolation)
    missing = job_kernel.missing_modules()
    if missing:
        message = (f"unsupported image: its {sys.executable} (Python {environment['python_version']}) cannot import "
                   f"{', '.join(missing)}. The GitLab runner drives the kernel from inside the CI job, so the image "
                   "needs nbclient, nbformat, jupyter_client and pyzmq besides ipykernel (Jupyter images carry them; "
                   "on Debian, python3-nbclient); RUNNER=image needs only ipykernel")
        return _finish({"outcome": "unsupported_image", "message": message}, None, message.encode(), environment)
    try:
        job_kernel.kernel_environment(manifest, isolation, WORK)  # the manifest's shape, checked before anything runs
    except ValueError as exc:
        message = f"the manifest is not valid: {exc}"
        return _finish({"outcome": "driver_error", "message": message}, None, message.encode(), environment)
    try:
        notebook = _inside(WORK, manifest["notebook"])
        for item in manifest["inputs"]:
            _fetch(item)
        with open(notebook, encoding="utf-8") as handle:
            notebook_text = handle.read()
    except (FetchError, KeyError, TypeError, ValueError, OSError) as exc:
        message = f"an input could not be fetched from nbarchive: {exc}"
        return _finish({"outcome": "driver_error", "message": message[:2000]}, None, message.encode(), environment)
    _guard_checkout()
    key = secrets.token_hex(32)
    run_dir = job_kernel.prepare_run_dir(isolation, uid, key, WORK)
    try:
        kernel_env = job_kernel.kernel_environment(manifest, isolation, run_dir)
        command = job_kernel.kernel_command(isolation, uid, run_dir, kernel_env)
        spec = job_kernel.collector_spec(manifest, notebook_text, command, run_dir, key, isolation)
        status, executed, logs = job_kernel.collect(spec, os.path.dirname(notebook))
    finally:
        ended = job_kernel.end_leftovers(isolation, uid)
        shutil.rmtree(run_dir, ignore_errors=True)
    if not ended:
        status, executed = {"outcome": "driver_error", "message": "processes of the notebook survived the run"}, None
    status["kernel_isolation"] = isolation
    return _finish(status, executed, logs, environment)


if __name__ == "__main__":
    sys.exit(main())
