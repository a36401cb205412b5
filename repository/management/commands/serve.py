"""python manage.py serve [ADDRESS]: the web server and a Celery worker (with the embedded beat) together, for the
embedded defaults.

The worker is a child process in a process group of its own; it is stopped, with everything it started (its pool
and the beat), when the web server stops: on Ctrl-C, SIGINT or SIGTERM, and even when this process is killed
outright (the kernel sends the worker SIGTERM when its parent dies). A restart therefore never finds a second
worker still running. In production run gunicorn, `celery worker` and one `celery beat` as separate services
instead (see deploy/).

Every absolute link the site writes follows ADDRESS (SITE_URL is derived from it) unless SITE_URL is set.
"""

import ctypes
import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from repository.management.listen_address import refuse_public_address_in_debug
from repository.settings._env import site_url_for_address

# How long the worker gets for a warm shutdown (finishing its task) before its whole group is killed; an
# unfinished task is redelivered (acks_late).
WORKER_STOP_SECONDS = 20
# Every queue the app routes to (CELERY_TASK_ROUTES); production runs a worker for `dois` of its own.
EMBEDDED_WORKER_QUEUES = ("celery", "verification", "dois")
_PR_SET_PDEATHSIG = 1


class Command(BaseCommand):
    help = "Run the development web server with a Celery worker alongside (embedded defaults, one machine)."

    def add_arguments(self, parser):
        parser.add_argument("address", nargs="?", default=None,
                            help="host:port or port to listen on (default NBARCHIVE_ADDRESS, 127.0.0.1:8000)")

    def handle(self, *args, address, **options):
        address = address or settings.SERVE_ADDRESS
        refuse_public_address_in_debug(address, debug=settings.DEBUG)  # before the worker starts
        if not os.environ.get("SITE_URL"):
            settings.SITE_URL = site_url_for_address(address)
        worker = self._start_worker(address)
        # SIGTERM (systemd, kill, a supervisor) ends runserver the way Ctrl-C does, so the `finally` below runs.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            call_command("runserver", address, use_reloader=False)
        finally:
            # A second signal while the worker shuts down must not cut the shutdown short.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _stop(worker)

    def _start_worker(self, address: str) -> subprocess.Popen:
        environment = {**os.environ, "NBARCHIVE_ADDRESS": address}
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "repository", "worker", "--loglevel", "INFO",
             "--concurrency", "1", "--queues", ",".join(EMBEDDED_WORKER_QUEUES),
             # The embedded beat runs the periodic jobs (the DOI sweep); production runs `celery beat` once.
             "--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")],
            env=environment,
            # Its own group: the worker's pool and beat can be stopped together, and a Ctrl-C in the terminal
            # reaches the worker only through us (once), not twice.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is not None:
        return
    worker.terminate()  # Celery's warm shutdown: the pool and the embedded beat stop with it
    try:
        worker.wait(timeout=WORKER_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    # Whatever the worker left behind in its group (a pool process that did not follow) goes too.
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
