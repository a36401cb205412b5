"""Target paths: where a staged file may go under the working folder, and its folders created on the way.

``prepare_target(workdir, relative, label, created_folders)`` returns ``workdir/relative`` after creating its
missing parent folders (appended to ``created_folders``, so the caller can make them read-only at the end). It
raises ``StagingError`` for a path that is empty, absolute, contains ``..`` or empty/``.`` parts, backslashes or
NUL, passes through a symbolic link or a file, is already taken, or would in any other way end outside
``workdir``. With ``create=False`` it only checks and creates nothing.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from repository.runners.staging.errors import StagingError


def prepare_target(
    workdir: Path, relative: str, label: str, created_folders: list[Path], *, create: bool = True
) -> Path:
    """Return workdir/relative after creating its folders; refuse anything that could end outside workdir.

    With create=False only check: nothing below a missing folder can be in the way.
    """
    parts = _path_parts(relative, label)
    current = workdir
    for part in parts[:-1]:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if not create:
                return workdir.joinpath(*parts)
            os.mkdir(current, 0o755)
            created_folders.append(current)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise StagingError(label, f"its path {relative!r} passes through a symbolic link; refusing to follow it.")
        if not stat.S_ISDIR(info.st_mode):
            raise StagingError(label, f"its path {relative!r} needs {part!r} to be a folder, but it is a file.")
    target = current / parts[-1]
    if os.path.lexists(target):
        raise StagingError(label, f"{relative!r} is already taken in the working folder; give each input its own path.")
    # Belt and braces: whatever the checks above missed, the real parent must still be inside workdir.
    if not Path(os.path.realpath(target.parent)).is_relative_to(workdir):
        raise StagingError(label, f"its path {relative!r} leads outside the working folder.")
    return target


def _path_parts(relative: str, label: str) -> list[str]:
    if not relative or "\x00" in relative or "\\" in relative:
        raise StagingError(label, f"its path {relative!r} is empty or has characters paths may not contain.")
    if relative.startswith("/"):
        raise StagingError(label, f"its path {relative!r} is absolute; give a path relative to the notebook.")
    parts = relative.split("/")
    if ".." in parts:
        raise StagingError(label, f"its path {relative!r} contains '..'; give a path inside the notebook's folder.")
    if any(part in ("", ".") for part in parts):
        raise StagingError(label, f"its path {relative!r} has empty or '.' parts; write it plainly (a/b.csv).")
    return parts
