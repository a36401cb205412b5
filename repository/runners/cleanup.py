"""Removing what a run leaves on the host, whatever modes it was left with.

Staging makes inputs and their folders read-only, and a notebook may make its own folders read-only or
inaccessible (0o000); for a worker that is not root, ``shutil.rmtree(..., ignore_errors=True)`` then silently
leaves them behind (301 MB stayed after one run). ``remove_tree(path)`` gives every directory back its owner's
read, write and search bits before listing and emptying it, then removes it. It never follows a symbolic link:
directories are opened relative to their parent with ``O_NOFOLLOW`` and checked to be the directory that was
looked at, links are unlinked as they are. Descriptors stay bounded however deep the tree: a directory deeper than
``MAX_OPEN_DEPTH`` is moved up to the top of the tree and emptied from there.

It returns what it could not remove (``"<path>: <reason>"``, e.g. a folder owned by another user), each also
logged as a warning; it raises nothing for a tree that is already gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

MAX_OPEN_DEPTH = 32
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: str | os.PathLike) -> list[str]:
    """Remove ``path`` and everything below it; return (and log) what could not be removed."""
    path = Path(path)
    failures: list[str] = []
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return []
    except OSError as error:
        failures.append(f"{path}: {error.strerror or error}")
    else:
        if stat.S_ISDIR(info.st_mode):
            _remove_top(path, failures)
        else:
            _attempt(failures, str(path), os.unlink, path)
    for failure in failures:
        log.warning("Could not remove %s", failure)
    return failures


def _attempt(failures: list[str], shown: str, operation, *args, **kwargs) -> bool:
    try:
        operation(*args, **kwargs)
    except FileNotFoundError:
        return True
    except OSError as error:
        failures.append(f"{shown}: {error.strerror or error}")
        return False
    return True


def _owner_may_enter(name: str | Path, mode: int, *, dir_fd: int | None = None) -> None:
    """Give a directory (known not to be a link) its owner's rwx, so it can be listed and emptied. Someone else's
    directory keeps its mode: what then cannot be listed or removed in it is what gets reported."""
    if stat.S_IMODE(mode) & stat.S_IRWXU != stat.S_IRWXU:
        with contextlib.suppress(PermissionError):
            os.chmod(name, stat.S_IMODE(mode) | stat.S_IRWXU, dir_fd=dir_fd)


class _Tree:
    """One removal: the top directory's descriptor, where over-deep directories are moved to, and the failures."""

    def __init__(self, top_fd: int, failures: list[str]):
        self.top_fd = top_fd
        self.failures = failures
        self.moved_up = 0  # directories moved up so far (their new names count up)
        self.pending = True  # something was moved up since the top was last listed

    def empty(self, fd: int, shown: str, depth: int) -> None:
        try:
            with os.scandir(fd) as listing:
                entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
        except OSError as error:
            self.failures.append(f"{shown}: {error.strerror or error}")
            return
        for name, is_directory in entries:
            child = f"{shown}/{name}"
            if not is_directory:
                _attempt(self.failures, child, os.unlink, name, dir_fd=fd)
            elif depth >= MAX_OPEN_DEPTH:
                self._move_up(fd, name, child)
            elif self._empty_child(fd, name, child, depth):
                _attempt(self.failures, child, os.rmdir, name, dir_fd=fd)

    def _empty_child(self, fd: int, name: str, shown: str, depth: int) -> bool:
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(name, dir_fd=fd)  # it changed under us; a link or a file is simply unlinked
                return False
            _owner_may_enter(name, info.st_mode, dir_fd=fd)
            child_fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=fd)
        except OSError as error:
            self.failures.append(f"{shown}: {error.strerror or error}")
            return False
        try:
            opened = os.fstat(child_fd)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                self.failures.append(f"{shown}: it was replaced while being removed")
                return False
            self.empty(child_fd, shown, depth + 1)
        finally:
            os.close(child_fd)
        return True

    def _move_up(self, fd: int, name: str, shown: str) -> None:
        """Too deep to keep a descriptor for each level: continue from the top of the tree."""
        while True:
            self.moved_up += 1
            new_name = f".nbarchive-deep-{self.moved_up}"
            try:
                os.stat(new_name, dir_fd=self.top_fd, follow_symlinks=False)
            except FileNotFoundError:
                break
        if _attempt(self.failures, shown, os.rename, name, new_name, src_dir_fd=fd, dst_dir_fd=self.top_fd):
            self.pending = True


def _remove_top(path: Path, failures: list[str]) -> None:
    try:
        _owner_may_enter(path, os.lstat(path).st_mode)
        top_fd = os.open(path, _DIRECTORY_FLAGS)
    except OSError as error:
        failures.append(f"{path}: {error.strerror or error}")
        return
    try:
        tree = _Tree(top_fd, failures)
        while tree.pending:  # again only when a directory was moved up: each pass removes MAX_OPEN_DEPTH levels
            tree.pending = False
            tree.empty(top_fd, str(path), 0)
    finally:
        os.close(top_fd)
    failures[:] = dict.fromkeys(failures)  # a pass after a move-up may meet the same stubborn entry again
    if not failures:
        _attempt(failures, str(path), os.rmdir, path)
