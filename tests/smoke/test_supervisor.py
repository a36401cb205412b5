"""The smoke test's supervisor stops everything it started, children of its children included, and names the log
that explains a failure."""

import os
import sys

import pytest

from tests.processes import is_alive, process_descendants
from tests.smoke.supervisor import SmokeFailure, Supervisor

FORKS_AND_IGNORES_SIGTERM = (
    "import os, signal, subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN) if 'stubborn' in sys.argv else None\n"
    "print('ready', flush=True)\n"
    "time.sleep(300)\n"
)


@pytest.mark.parametrize("stubborn", [False, True])
def test_stopping_ends_each_process_and_what_it_forked(tmp_path, monkeypatch, stubborn):
    monkeypatch.setattr("tests.smoke.supervisor.STOP_SECONDS", 1)
    supervisor = Supervisor(tmp_path)
    arguments = ["stubborn"] if stubborn else []
    started = supervisor.start("forker", [sys.executable, "-c", FORKS_AND_IGNORES_SIGTERM, *arguments],
                               env=dict(os.environ), cwd=tmp_path)
    supervisor.wait_for_log("forker", "ready")
    family = [started.process.pid, *process_descendants(started.process.pid)]
    assert len(family) == 2

    supervisor.stop_all()

    assert not any(is_alive(pid) for pid in family)
    assert supervisor.killed == (["forker"] if stubborn else [])


def test_a_process_that_dies_is_a_failure_naming_its_log(tmp_path):
    supervisor = Supervisor(tmp_path)
    supervisor.start("crasher", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], env=dict(os.environ),
                     cwd=tmp_path)

    with pytest.raises(SmokeFailure) as failure:
        supervisor.wait_for_port("crasher", 9, timeout=30)

    assert failure.value.log == "crasher" and "exited with 3" in failure.value.reason
    assert "boom" in supervisor.tail("crasher")
    supervisor.stop_all()


def test_a_failed_command_is_named_by_its_manage_py_command(tmp_path):
    supervisor = Supervisor(tmp_path)

    with pytest.raises(SmokeFailure) as failure:
        supervisor.run("release", [sys.executable, "-c", "raise SystemExit(1)", "manage.py", "migrate", "--no-input"],
                       env=dict(os.environ), cwd=tmp_path)

    assert failure.value.reason == "manage.py migrate exited with 1" and failure.value.log == "release"
