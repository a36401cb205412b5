"""python manage.py search_reindex: rebuild the search index from the public versions (after an upgrade that
added search, or after `seed_records`, which writes rows without the services that keep the index)."""

import time

from django.core.management.base import BaseCommand

from repository.search import search_reindex


class Command(BaseCommand):
    help = "Rebuild the search index of every public version."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=2000, help="Versions per transaction (default 2000).")

    def handle(self, *args, batch, **options):
        started = time.monotonic()

        def progress(done: int) -> None:
            if options["verbosity"] > 1:
                self.stdout.write(f"indexed {done} versions")

        count = search_reindex(batch_size=max(batch, 1), progress=progress)
        if options["verbosity"]:
            self.stdout.write(self.style.SUCCESS(
                f"Indexed {count} versions in {time.monotonic() - started:.1f} s."))
