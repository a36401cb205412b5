"""The processes the smoke test starts: each in a session (process group) of its own with its log in a file, so
that stopping one stops everything it forked (gunicorn's workers, Celery's pool, skopeo under a worker), and
each dies with the smoke test even when that is killed outright (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STOP_SECONDS = 15  # a warm shutdown (gunicorn's workers, Celery finishing a task) before SIGKILL
_PR_SET_PDEATHSIG = 1


class SmokeFailure(Exception):
    """A step did not do what it should; `log` names the process whose log explains it."""

    def __init__(self, reason: str, *, log: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.log = log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Started:
    name: str
    process: subprocess.Popen
    log_path: Path


class Supervisor:
    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started: dict[str, Started] = {}
        self.killed: list[str] = []  # what did not stop within STOP_SECONDS of SIGTERM

    def start(self, name: str, command: list[str], *, env: dict[str, str], cwd: Path) -> Started:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                       preexec_fn=_die_with_parent)
        self.started[name] = Started(name, process, log_path)
        return self.started[name]

    def run(self, name: str, command: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
        """Run a command to its end (migrate, backup...), its output appended to the log `name`; return the
        output, or raise SmokeFailure naming that log when it fails."""
        log_path = self.log_dir / f"{name}.log"
        try:
            result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
                                    check=False)
        except subprocess.TimeoutExpired as exc:
            with log_path.open("a") as log:
                log.write(f"$ {' '.join(command)}\n{_text(exc.stdout)}{_text(exc.stderr)}(timed out)\n")
            raise SmokeFailure(f"{_describe(command)} did not end within {timeout:.0f} s", log=name) from exc
        with log_path.open("a") as log:
            log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}(exit {result.returncode})\n")
        if result.returncode != 0:
            raise SmokeFailure(f"{_describe(command)} exited with {result.returncode}", log=name)
        return result.stdout

    def finish(self, name: str, *, timeout: float = 300) -> None:
        """Wait for a process started with `start` to end; SmokeFailure naming its log unless it exited 0."""
        process = self.started[name].process
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise SmokeFailure(f"{name} did not end within {timeout:.0f} s", log=name) from exc
        if code != 0:
            raise SmokeFailure(f"{name} exited with {code}", log=name)
        del self.started[name]  # done: no longer one of the processes that must keep running

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    def wait_for_port(self, name: str, port: int, *, timeout: float = 60) -> None:
        self.wait_until(name, lambda: port_open(port), f"did not listen on port {port}", timeout=timeout)

    def wait_for_log(self, name: str, text: str, *, timeout: float = 60) -> None:
        self.wait_until(name, lambda: text in self.log_text(name), f"did not log {text!r}", timeout=timeout)

    def wait_until(self, name: str, condition, failure: str, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.ensure_running(name)
            if time.monotonic() > deadline:
                raise SmokeFailure(f"{name} {failure} within {timeout:.0f} s", log=name)
            time.sleep(0.1)

    def ensure_running(self, *names: str) -> None:
        for name in names or tuple(self.started):
            code = self.started[name].process.poll()
            if code is not None:
                raise SmokeFailure(f"{name} exited with {code}", log=name)

    def stop_all(self) -> None:
        """SIGTERM every group, newest first, at once; SIGKILL what is still there after STOP_SECONDS."""
        running = [s for s in reversed(self.started.values()) if s.process.poll() is None]
        for started in running:
            _signal_group(started.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for started in running:
            try:
                started.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.killed.append(started.name)
        for started in self.started.values():
            # Also the groups whose leader ended: a Celery pool process may outlive its parent for a moment.
            _signal_group(started.process.pid, signal.SIGKILL)
            if started.process.poll() is None:
                started.process.wait(timeout=10)
        # A signal is delivered when the process next runs: return once every group is really gone.
        deadline = time.monotonic() + 10
        while any(_group_exists(s.process.pid) for s in self.started.values()) and time.monotonic() < deadline:
            time.sleep(0.05)


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_exists(pgid: int) -> bool:
    """A process of the group still runs. Zombies do not count: whether they are reaped soon depends on this
    machine's init (in a container often a process that reaps slowly or never)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state, _parent, group = handle.read().rsplit(b")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != b"Z":
            return True
    return False


def _text(output: bytes | str | None) -> str:
    # TimeoutExpired carries bytes even when the command ran with text=True.
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


def _describe(command: list[str]) -> str:
    """`manage.py migrate`, not the interpreter's path or a whole shell script."""
    if "manage.py" in command:
        return " ".join(command[command.index("manage.py"):][:2])
    return Path(command[0]).name
