"""The verification job's script. Runs INSIDE the GitLab CI job, in the version's pinned image, with its Python.

The GitLab runner commits this file as `.nbarchive/job.py`, the sandbox driver as `.nbarchive/driver.py`, the
notebook under `work/` and `.nbarchive/manifest.json`; the CI file's only script line is
`python3 .nbarchive/job.py`, so no value of the submitter ever reaches a shell. Everything the job needs to know
(the notebook's path, the inputs, the limits) it reads from the manifest, as data.

It imports nothing of nbarchive or Django, and only the standard library itself (the driver needs nbformat and
nbclient, which Jupyter images carry). Steps:
1. fetch every input of the manifest from its short-lived nbarchive URL into `work/<target_path>`, checking size
   and sha256 (a path that would leave `work/` is refused);
2. run the driver on the notebook with a scrubbed environment (no CI_JOB_TOKEN or other CI variables reach the
   kernel), from the notebook's folder, logging to out/driver.log;
3. describe the environment (Python, packages) in out/environment.json.
The verdict is what `out/status.json` says (the driver's format; a failed fetch is a `driver_error`). The exit code
is 0 when the notebook ran to the end and 1 otherwise, so GitLab shows a failed run in red; nbarchive reads the
artifacts either way (`artifacts: when: always`).
"""

import hashlib
import json
import os
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.getcwd()  # the checkout (CI_PROJECT_DIR)
WORK = os.path.join(ROOT, "work")
OUT = os.path.join(ROOT, "out")
CHUNK = 1024 * 1024
FETCH_TIMEOUT_SECONDS = 60
LOG_TAIL_BYTES = 20_000
KERNEL_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
KEPT_FROM_IMAGE = ("PATH", "HOME", "CONDA_DIR", "CONDA_PREFIX", "VIRTUAL_ENV", "JUPYTER_PATH", "LD_LIBRARY_PATH")


class FetchError(Exception):
    pass


def _write_status(status: dict) -> None:
    with open(os.path.join(OUT, "status.json"), "w", encoding="utf-8") as handle:
        json.dump(status, handle)


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


def _describe_environment() -> None:
    try:
        import importlib.metadata as metadata

        packages = {dist.metadata["Name"]: dist.version for dist in metadata.distributions() if dist.metadata["Name"]}
    except Exception:  # noqa: BLE001 - a description, never a reason to fail the run
        packages = {}
    environment = {"python_version": sys.version.split()[0], "packages": dict(sorted(packages.items()))}
    with open(os.path.join(OUT, "environment.json"), "w", encoding="utf-8") as handle:
        json.dump(environment, handle)


def main() -> int:
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(HERE, "manifest.json"), encoding="utf-8") as handle:
        manifest = json.load(handle)
    _describe_environment()
    try:
        notebook = _inside(WORK, manifest["notebook"])
        for item in manifest["inputs"]:
            _fetch(item)
    except (FetchError, KeyError, TypeError, ValueError) as exc:
        message = f"an input could not be fetched from nbarchive: {exc}"
        print(message, flush=True)
        _write_status({"outcome": "driver_error", "message": message[:2000]})
        return 1
    environment = {key: os.environ[key] for key in KEPT_FROM_IMAGE if key in os.environ}
    environment.update(KERNEL_ENV)
    command = [sys.executable, os.path.join(HERE, "driver.py"), notebook, OUT,
               str(int(manifest["cell_timeout_seconds"])), str(int(manifest["max_output_bytes"]))]
    log_path = os.path.join(OUT, "driver.log")
    with open(log_path, "wb") as log:
        completed = subprocess.run(command, cwd=os.path.dirname(notebook), env=environment, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, check=False)
    with open(log_path, "rb") as log:
        log.seek(max(0, os.path.getsize(log_path) - LOG_TAIL_BYTES))
        sys.stdout.write(log.read().decode("utf-8", errors="replace"))
    status_path = os.path.join(OUT, "status.json")
    if not os.path.exists(status_path):
        _write_status({"outcome": "driver_error", "message": f"the driver exited with code {completed.returncode} "
                                                             "without a status (is nbclient in the image?)"})
        return 1
    try:
        with open(status_path, encoding="utf-8") as handle:
            outcome = json.load(handle).get("outcome")
    except (OSError, ValueError, AttributeError):
        outcome = None
    print(f"nbarchive: the notebook's run ended with '{outcome}'", flush=True)
    return 0 if outcome == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
