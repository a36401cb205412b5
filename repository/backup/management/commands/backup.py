"""python manage.py backup: append what is new to the backup target now (the nightly Celery task does the same).

A progress bar (bytes of file contents) runs on a terminal, then one line sums up. Exits 1 with a one-line error
when the target cannot be used or another backup is running, and when some files could not be backed up (they
are listed; the others were).
"""

from django.core.management.base import BaseCommand, CommandError

from repository.backup.progress import ProgressBar
from repository.backup.services import backup_pending, backup_run
from repository.errors import NbarchiveError


class Command(BaseCommand):
    help = "Write new files and changed metadata of accepted versions to the backup target (tar volumes)."

    def handle(self, *args, **options):
        _count, total = backup_pending()
        try:
            with ProgressBar(self.stderr, description="backup") as bar:
                bar.start(total)
                summary = backup_run(trigger="command", progress=bar.advance)
        except NbarchiveError as exc:
            raise CommandError(exc.detail) from exc
        for failure in summary.failures:
            self.stderr.write(f"Not backed up: {failure}")
        self.stdout.write(f"Backed up {summary.line()}.")
        if summary.failures:
            raise CommandError(f"{len(summary.failures)} file(s) could not be backed up; see above.")
