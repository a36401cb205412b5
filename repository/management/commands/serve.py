"""python manage.py serve [ADDRESS]: the web server and a Celery worker together, for the embedded defaults.

The worker is a child process; it is stopped when the web server stops. In production run gunicorn and
`celery -A repository worker` as separate services instead (see deploy/).
"""

import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the development web server with a Celery worker alongside (embedded defaults, one machine)."

    def add_arguments(self, parser):
        parser.add_argument("address", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, address, **options):
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "repository", "worker", "--loglevel", "INFO",
             "--concurrency", "1", "--queues", "celery,verification",
             # The embedded beat runs the periodic jobs (the DOI sweep); production runs `celery beat` once.
             "--beat", "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")]
        )
        try:
            call_command("runserver", address, use_reloader=False)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
