"""What the collector reads of the sandbox's processes: bwrap's status report and the memory of a process tree.

Standard library only: kernel_collector.py imports it as a sibling file, in the worker and inside GitLab jobs
(repository/gitlab/ci.py ships it), and sandbox_start.py / images/inspection.py in the worker.
"""

import json
import os

BWRAP_STATUS_LIMIT = 64 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def read_bwrap_status(descriptor: int) -> dict:
    """What bwrap reported on its --json-status-fd (JSON lines), read from the pipe's read end, which is closed:
    whether it cloned the sandbox ("child_pid") and the exit code of the command it started (None when it never
    executed one: its set-up failed, or it was killed first). Only bwrap holds the write end (its child closes it),
    so nothing inside the sandbox writes here."""
    os.set_blocking(descriptor, False)
    data = b""
    try:
        while len(data) < BWRAP_STATUS_LIMIT:
            chunk = os.read(descriptor, BWRAP_STATUS_LIMIT)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass  # bwrap still running: what it said so far
    finally:
        os.close(descriptor)
    reported = {"child_pid": False, "exit_code": None}
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("child-pid"), int):
            reported["child_pid"] = True
        if isinstance(record, dict) and isinstance(record.get("exit-code"), int):
            reported["exit_code"] = record["exit-code"]
    return reported


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, read from /proc.

    Sampled while the run goes on: rusage cannot tell, because the kernel's usage does not reach us through
    the sandbox's PID namespace init.
    """
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)  # fields[1] is the parent pid
        rss[pid] = int(fields[21]) * PAGE_SIZE  # fields[21] is rss in pages
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total
