"""python manage.py restore --from TARGET [--verify-only]: rebuild primary storage (and, into an empty database,
the records' metadata) from a backup target alone: a directory or s3://bucket[/prefix] (with the configured S3
endpoint and keys).

Every volume, member and bag is verified on the way. A progress bar (bytes read) runs on a terminal, then one
line sums up and each problem is listed. --verify-only reads and checks everything and changes nothing. Exits 1
when the target is missing or unreadable (one line), or when any problem was found.
"""

from django.core.management.base import BaseCommand, CommandError

from repository.backup.progress import ProgressBar
from repository.backup.restore import backup_restore
from repository.errors import NbarchiveError


class Command(BaseCommand):
    help = "Restore primary storage and, into an empty database, the records from a backup target."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="location", required=True, metavar="TARGET",
                            help="The backup: a directory or s3://bucket[/prefix].")
        parser.add_argument("--verify-only", action="store_true",
                            help="Only read and verify every volume, file and bag; change nothing.")

    def handle(self, *args, location, verify_only, **options):
        try:
            with ProgressBar(self.stderr, description="verify" if verify_only else "restore") as bar:
                summary = backup_restore(location=location, verify_only=verify_only, progress=bar.advance)
        except NbarchiveError as exc:
            raise CommandError(exc.detail) from exc
        for problem in summary.problems:
            self.stderr.write(f"Problem: {problem}")
        self.stdout.write(summary.line() + ".")
        if not summary.ok:
            raise CommandError(f"{len(summary.problems)} problem(s) found in {summary.target}; see above.")
