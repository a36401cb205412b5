"""The artifacts of a fake GitLab job: `artifacts:paths` (files or folders relative to the project folder; a folder
brings everything in it) collected into a zip, like artifacts.zip of a real job, capped like an instance's maximum
artifacts size. Symbolic links are never followed (the job cannot make the fake read a file outside its folder);
they are left out with a warning in the trace.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

MAX_ARTIFACTS_BYTES = 100 * 1024 * 1024


def collect_artifacts(project_dir: Path, artifact_paths: list[str], log: Callable[[bytes], None]
                      ) -> tuple[bytes | None, bool]:
    """Zip the files under the artifact paths; (None, False) when nothing matched, (None, True) when too large."""
    files = _regular_files(project_dir)
    chosen: dict[str, Path] = {}
    for raw in artifact_paths:
        wanted = raw.strip().removeprefix("./").rstrip("/")
        if not wanted or wanted.startswith("/") or ".." in wanted.split("/"):
            log(f"WARNING: {raw}: not in the project directory; ignored\n".encode())
            continue
        for symlink in (rel for rel in files.symlinks if _under(rel, wanted)):
            log(f"WARNING: {symlink}: a symbolic link; the fake leaves it out\n".encode())
        matched = [rel for rel in files if _under(rel, wanted)]
        if not matched:
            log(f"WARNING: {wanted}: no matching files. Ensure that the artifact path is relative "
                "to the working directory\n".encode())
        chosen.update((rel, files[rel]) for rel in matched)
    if not chosen:
        log(b"ERROR: No files to upload\n")
        return None, False
    total = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        directories: set[str] = set()
        for rel in sorted(chosen):
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth]) + "/"
                if folder not in directories:
                    directories.add(folder)
                    archive.writestr(zipfile.ZipInfo(folder), b"")
            content = _read_no_follow(chosen[rel], MAX_ARTIFACTS_BYTES - total + 1)
            if content is None:
                continue
            total += len(content)
            if total > MAX_ARTIFACTS_BYTES:
                return None, True
            archive.writestr(rel, content)
    log(f"{len(chosen)} files and directories; artifacts.zip uploaded (fake: {total} bytes)\n".encode())
    return buffer.getvalue(), False


def _under(rel: str, wanted: str) -> bool:
    return rel == wanted or rel.startswith(wanted + "/")


class _Files(dict):
    """Regular files under the project folder (relative posix path -> host path), plus the symbolic links seen."""

    symlinks: list[str]


def _regular_files(root: Path) -> _Files:
    files = _Files()
    files.symlinks = []
    for current, dirs, names in os.walk(root, followlinks=False):
        base = Path(current)
        for name in [*dirs]:
            if (base / name).is_symlink():
                files.symlinks.append((base / name).relative_to(root).as_posix())
                dirs.remove(name)
        for name in names:
            path = base / name
            rel = path.relative_to(root).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                files.symlinks.append(rel)
            elif stat.S_ISREG(mode):
                files[rel] = path
    return files


def _read_no_follow(path: Path, limit: int) -> bytes | None:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(max(limit, 0))
