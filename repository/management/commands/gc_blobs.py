"""python manage.py gc_blobs [--grace-hours H] [--dry-run]: one pass of the blob garbage collector now.

Blobs that no version file and no run uses are marked on one pass and deleted on a later pass once they have been
marked for the grace period (BLOB_GC_GRACE_HOURS unless given); temporary objects of crashed uploads older than
that go too. --dry-run changes nothing and says what a pass would do. Published bytes are never deleted.
"""

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from repository.services.blobs import blob_gc


class Command(BaseCommand):
    help = "Mark unused blobs, delete those unused for the grace period, and sweep crashed uploads."

    def add_arguments(self, parser):
        parser.add_argument("--grace-hours", type=float, default=None,
                            help=f"Hours a blob stays marked before it is deleted (default BLOB_GC_GRACE_HOURS, "
                                 f"now {settings.BLOB_GC_GRACE_HOURS:g}).")
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; report what would happen.")

    def handle(self, *args, grace_hours, dry_run, **options):
        hours = settings.BLOB_GC_GRACE_HOURS if grace_hours is None else grace_hours
        if hours < 0:
            raise CommandError("--grace-hours cannot be negative.")
        report = blob_gc(grace=timedelta(hours=hours), dry_run=dry_run)
        self.stdout.write(report.line())
        if report.problems:
            for problem in report.problems:
                self.stderr.write(problem)
            raise CommandError(f"{len(report.problems)} problem(s); see above.")
