"""The files of an unpacked image on the worker's disk: made harmless to the host and measured. They are removed
with repository.runners.cleanup.remove_tree, whatever modes the image gave its folders."""

import os
import stat
from pathlib import Path

CAPABILITY_XATTR = "security.capability"


def disarm_and_measure(rootfs: Path) -> int:
    """Clear setuid and setgid bits and file capabilities, remove device nodes, and return the size on disk.

    Inside the sandbox none of them works (nosuid, nodev, no new privileges). On the host they would: the cache is
    searchable by every uid (the sandbox uids must reach it), so a setuid-root program or a world-writable disk
    device of an image would be any local user's way to root."""
    seen = set()
    total = 0
    for directory, dirs, files in os.walk(rootfs):
        for name in dirs + files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                os.unlink(path)
                continue
            if stat.S_ISREG(info.st_mode):
                if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    os.chmod(path, stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
                if CAPABILITY_XATTR in _xattrs(path):
                    os.removexattr(path, CAPABILITY_XATTR, follow_symlinks=False)
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def _xattrs(path: str) -> list[str]:
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:  # a filesystem without extended attributes
        return []
