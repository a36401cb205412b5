"""python manage.py fixity_check [--sample PERCENT]: re-read files in primary storage and in the backup, compare
their sha256, repair primary objects from the backup and e-mail the admins about any mismatch.

--sample checks that percentage of the files, the least recently checked first (default: all). A progress bar
runs on a terminal, then one line sums up. Exits 1 when a mismatch was found (repaired or not).
"""

from django.core.management.base import BaseCommand, CommandError

from repository.backup.fixity import fixity_check_run
from repository.backup.progress import ProgressBar
from repository.errors import NbarchiveError


def _percent(value: str) -> float:
    import argparse

    try:
        number = float(value)
    except ValueError:
        number = -1
    if not 0 < number <= 100:
        raise argparse.ArgumentTypeError(f"{value!r} is not a percentage in (0, 100]")
    return number


class Command(BaseCommand):
    help = "Check the sha256 of files in primary storage and in the backup; repair primary objects from the backup."

    def add_arguments(self, parser):
        parser.add_argument("--sample", type=_percent, default=100.0, metavar="PERCENT",
                            help="Check this percentage of the files, least recently checked first (default 100).")

    def handle(self, *args, sample, **options):
        try:
            with ProgressBar(self.stderr, unit=" files", description="fixity") as bar:
                summary = fixity_check_run(sample_percent=sample, progress=bar.advance)
        except NbarchiveError as exc:
            raise CommandError(exc.detail) from exc
        for mismatch in summary.mismatches:
            self.stderr.write(f"Mismatch: {mismatch}")
        self.stdout.write(summary.line() + ".")
        if not summary.ok:
            raise CommandError(f"{len(summary.mismatches)} file(s) did not match; the admins were e-mailed.")
