"""What the GitLab runner commits for a run, on a branch of its own of the verification project (GITLAB_PROJECT,
which holds no secrets and gets none):
- `work/<notebook path>`: the staged notebook;
- `.nbarchive/manifest.json` (`job_manifest`): the notebook's path, the limits, the kernel's environment (the
  local sandbox's SANDBOX_ENV, one source for every runner: `kernel_env` are its fixed values, `kernel_folders`
  the variables naming folders, which the job puts under the kernel's own home) and every other input as
  {target_path, url, sha256, size}, where url is a short-lived, signed nbarchive URL serving exactly the bytes
  staging verified (never a credential);
- `.nbarchive/job.py` and `.nbarchive/job_kernel.py` (the job's script), `.nbarchive/kernel_collector.py` (with
  `kernel_client.py` and `sandbox_process.py`), `.nbarchive/kernel_startup.py` and `.nbarchive/kernel_launcher.py`
  (the local runner's collector, kernel start-up file and kernel launcher: the job runs the notebook the same way,
  see job.py);
- `.gitlab-ci.yml` (`ci_file_text`): one job with `image:` = the pinned digest, `timeout:`, the fixed script
  `python3 .nbarchive/job.py` and `out/` as artifacts `when: always`.

The CI file cannot be bent by a crafted value: the image must pass `validate_container_image` (and contain no
whitespace or control character at all), every other value is ours, and the file is `json.dumps` of a dict:
JSON is YAML, and no string inside a JSON document can open a new key, a comment, an anchor or a document.
The script line is a constant; the job reads the submitter's values from the manifest as data. A value that
would break these rules raises UnsafeCiValue, which the runner turns into a verdict.
"""

import json
import re
from pathlib import Path, PurePosixPath

from django.core.exceptions import ValidationError

from repository import runners
from repository.runners.base import RunSpec
from repository.runners.sandbox import HOME, SANDBOX_ENV
from repository.validators import IMAGE_RE, validate_container_image, validate_file_path

CI_FILE = ".gitlab-ci.yml"
JOB_NAME = "nbarchive-verify"
JOB_SCRIPT_LINE = "python3 .nbarchive/job.py"
WORK_DIR = "work"
OUT_DIR = "out"
JOB_FILES = {
    ".nbarchive/job.py": Path(__file__).with_name("job.py"),
    ".nbarchive/job_kernel.py": Path(__file__).with_name("job_kernel.py"),
    ".nbarchive/kernel_collector.py": Path(runners.__file__).with_name("kernel_collector.py"),
    ".nbarchive/kernel_client.py": Path(runners.__file__).with_name("kernel_client.py"),
    ".nbarchive/sandbox_process.py": Path(runners.__file__).with_name("sandbox_process.py"),
    ".nbarchive/kernel_startup.py": Path(runners.__file__).with_name("kernel_startup.py"),
    ".nbarchive/kernel_launcher.py": Path(runners.__file__).with_name("kernel_launcher.py"),
}
MANIFEST_PATH = ".nbarchive/manifest.json"
URL_RE = re.compile(r"https?://[\x21-\x7e]+")  # printable ASCII only: no whitespace, no control characters
MB = 1024 * 1024


def kernel_environment() -> tuple[dict[str, str], dict[str, str]]:
    """The kernel's environment as the job must set it, from the local sandbox's SANDBOX_ENV: (fixed values,
    folder variables as paths relative to the kernel's home). PATH is the image's and HOME the job's own choice
    (job_kernel.py); a folder outside the sandbox's home keeps its last component (/tmp/matplotlib -> matplotlib)."""
    fixed, folders = {}, {}
    for key, value in SANDBOX_ENV.items():
        if key in ("PATH", "HOME"):
            continue
        if not value.startswith("/"):
            fixed[key] = value
            continue
        path = PurePosixPath(value)
        folders[key] = str(path.relative_to(HOME)) if path.is_relative_to(HOME) else path.name
    return fixed, folders


class UnsafeCiValue(ValueError):
    """A value that would go into the CI file or the commit is refused; the message says which and why."""


def checked_image(image: str) -> str:
    """The pinned image exactly as it may appear in the CI file, or UnsafeCiValue."""
    if not isinstance(image, str) or not image:
        raise UnsafeCiValue("The version pins no container image; the GitLab runner runs the notebook in it.")
    if any(char.isspace() or not char.isprintable() for char in image):
        raise UnsafeCiValue("The container image reference contains whitespace or control characters.")
    try:
        validate_container_image(image)
    except ValidationError as exc:
        raise UnsafeCiValue(f"The container image reference is refused: {exc.messages[0]}") from None
    if not IMAGE_RE.fullmatch(image):  # the validator's `$` would let a final newline through; fullmatch does not
        raise UnsafeCiValue("The container image reference is not registry/name@sha256:<digest>.")
    return image


def checked_path(path: str, what: str) -> str:
    try:
        validate_file_path(path)
    except ValidationError as exc:
        raise UnsafeCiValue(f"The path of {what} is refused: {exc.messages[0]}") from None
    return path


def ci_duration(seconds: int) -> str:
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def ci_config(*, image: str, timeout_seconds: int, artifacts_expire_days: int = 30) -> dict:
    """The pipeline definition: one job, every value ours except the checked image."""
    if not isinstance(timeout_seconds, int) or not 1 <= timeout_seconds <= 7 * 24 * 3600:
        raise UnsafeCiValue("The job timeout must be a whole number of seconds between 1 s and a week.")
    if not isinstance(artifacts_expire_days, int) or not 1 <= artifacts_expire_days <= 3650:
        raise UnsafeCiValue("The artifacts' lifetime must be a whole number of days between 1 and 3650.")
    return {
        "stages": ["verify"],
        JOB_NAME: {
            "stage": "verify",
            "image": {"name": checked_image(image)},
            "timeout": ci_duration(timeout_seconds),
            "interruptible": True,
            "retry": 0,
            "variables": {"GIT_DEPTH": "1", "GIT_SUBMODULE_STRATEGY": "none"},
            "script": [JOB_SCRIPT_LINE],
            "artifacts": {
                "when": "always",
                "name": "nbarchive-run",
                "paths": [f"{OUT_DIR}/"],
                "expire_in": f"{artifacts_expire_days} days",
            },
        },
    }


def ci_file_text(*, image: str, timeout_seconds: int, artifacts_expire_days: int = 30) -> str:
    """`.gitlab-ci.yml` as JSON (a subset of YAML 1.2 that GitLab reads): ASCII only, every string quoted and
    escaped by json.dumps, so no value can add a key, a comment, an anchor, a tag or a second document."""
    config = ci_config(image=image, timeout_seconds=timeout_seconds, artifacts_expire_days=artifacts_expire_days)
    return json.dumps(config, indent=2, ensure_ascii=True) + "\n"


def job_manifest(spec: RunSpec, notebook_path: str) -> dict:
    inputs = []
    for item in spec.inputs:
        target = checked_path(item.target_path, f"the input {item.target_path!r}")
        if target == notebook_path:
            raise UnsafeCiValue(f"The input {target!r} would replace the notebook.")
        if not URL_RE.fullmatch(item.url):
            raise UnsafeCiValue(f"The download URL of the input {target!r} is not a plain http(s) URL.")
        if not re.fullmatch(r"[0-9a-f]{64}", item.sha256) or not isinstance(item.size, int) or item.size < 0:
            raise UnsafeCiValue(f"The checksum or size of the input {target!r} is not valid.")
        inputs.append({"target_path": target, "url": item.url, "sha256": item.sha256, "size": item.size})
    kernel_env, kernel_folders = kernel_environment()
    return {
        "format": 2,
        "notebook": notebook_path,
        "kernel_env": kernel_env,
        "kernel_folders": kernel_folders,
        "cell_timeout_seconds": spec.limits.cell_timeout_seconds,
        "notebook_timeout_seconds": spec.limits.notebook_timeout_seconds,
        "max_output_bytes": spec.limits.max_output_mb * MB,
        "limits": {"memory_mb": spec.limits.memory_mb, "max_processes": spec.limits.max_processes},
        "inputs": inputs,
    }


def commit_files(spec: RunSpec, *, image: str, notebook_path: str, job_timeout_seconds: int,
                 artifacts_expire_days: int) -> dict[str, bytes]:
    """Every file of the run's commit, by path (image and notebook_path checked already)."""
    manifest = job_manifest(spec, notebook_path)
    files = {
        CI_FILE: ci_file_text(image=image, timeout_seconds=job_timeout_seconds,
                              artifacts_expire_days=artifacts_expire_days).encode("ascii"),
        MANIFEST_PATH: json.dumps(manifest, indent=2, ensure_ascii=True).encode("ascii"),
        f"{WORK_DIR}/{notebook_path}": (Path(spec.workdir) / notebook_path).read_bytes(),
    }
    for path, source in JOB_FILES.items():
        files[path] = source.read_bytes()
    return files
