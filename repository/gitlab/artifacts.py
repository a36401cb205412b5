"""The artifacts of a verification job: downloaded size-limited, read as hostile input (never extracted).

The job leaves in `out/`: status.json (the collector's verdict), executed.ipynb, driver.log (the collector's log)
and environment.json (Python, packages and `kernel_isolation`).
Each is read with a cap on its declared and its actual size; what is missing, too large or not JSON counts as
absent, and the runner says so in the run's verdict.
"""

import json
import zipfile
from dataclasses import dataclass

from repository.gitlab.ci import OUT_DIR
from repository.gitlab.client import GitLabClient

LOG_LIMIT_BYTES = 256 * 1024
SMALL_FILE_LIMIT = 1024 * 1024  # status.json and environment.json
# How far the job kept the kernel from the collector (job.py); anything else, or nothing (an older job), is unknown.
KERNEL_ISOLATION_LEVELS = ("separate-uid+pidns", "separate-uid", "shared-uid")


@dataclass
class Artifacts:
    status: dict
    executed: bytes | None
    driver_log: str
    environment: dict


def artifacts_download(client: GitLabClient, project_id: int, job_id: int, archive, max_bytes: int) -> int:
    archive.seek(0)
    archive.truncate()
    return client.job_artifacts(project_id, job_id, archive, max_bytes=max_bytes)


def artifacts_read(archive, executed_cap: int) -> Artifacts:
    """The files the job left in out/, each size-capped (declared and actual): hostile input, never extracted."""
    with zipfile.ZipFile(archive) as bundle:
        def member(name: str, cap: int) -> bytes | None:
            try:
                info = bundle.getinfo(f"{OUT_DIR}/{name}")
            except KeyError:
                return None
            if info.is_dir() or info.file_size > cap:
                return None
            with bundle.open(info) as handle:
                data = handle.read(cap + 1)
            return data if len(data) <= cap else None

        status = _json_object(member("status.json", SMALL_FILE_LIMIT))
        environment = _json_object(member("environment.json", SMALL_FILE_LIMIT))
        executed = member("executed.ipynb", executed_cap)
        log = member("driver.log", LOG_LIMIT_BYTES * 4) or b""
    packages = environment.get("packages")
    isolation = environment.get("kernel_isolation")
    environment = {
        "kernel_isolation": isolation if isolation in KERNEL_ISOLATION_LEVELS else "unknown",
        "python_version": str(environment.get("python_version", ""))[:50],
        "packages": {str(k)[:200]: str(v)[:100] for k, v in list(packages.items())[:2000]}
        if isinstance(packages, dict) else {},
    }
    return Artifacts(status=status, executed=executed, environment=environment,
                      driver_log=log[-LOG_LIMIT_BYTES:].decode("utf-8", errors="replace"))


def _json_object(data: bytes | None) -> dict:
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
