"""python manage.py doi_sync [--all | --refused | DOI ...]: bring DOIs at the registrar up to date now.

Without arguments it syncs every pending DOI in this process (useful without a worker) and prints what
happened; --refused retries those the registrar refused once an admin has fixed the cause; --all also re-sends
every DOI whose target moved (the site's address, SITE_URL, changed since it was registered), so that DOIs
registered under the old address resolve again.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F

from repository.doi import DoiUnavailable
from repository.models import DoiOutbox
from repository.services.dois import doi_moved_targets, doi_sync


class Command(BaseCommand):
    help = "Sync pending DOIs with the registrar now (in this process) and report the outcome of each."

    def add_arguments(self, parser):
        parser.add_argument("dois", nargs="*", help="Only these DOIs (sent again even when up to date).")
        parser.add_argument("--refused", action="store_true", help="Also retry DOIs the registrar refused.")
        parser.add_argument("--all", action="store_true", dest="moved",
                            help="Also re-send every DOI whose URL at the registrar is not its landing page now.")

    def handle(self, *args, dois, refused, moved, **options):
        if moved and not dois:
            pks = doi_moved_targets()
            DoiOutbox.objects.filter(pk__in=pks).update(generation=F("generation") + 1)
        if dois:
            rows = DoiOutbox.objects.filter(doi__in=[d.lower() for d in dois])
            missing = {d.lower() for d in dois} - set(rows.values_list("doi", flat=True))
            if missing:
                raise CommandError(f"Not a DOI of this repository: {', '.join(sorted(missing))}")
            rows.update(generation=F("generation") + 1, needs_attention=False)
        else:
            rows = DoiOutbox.objects.filter(synced_generation__lt=F("generation"))
            if refused:
                rows.filter(needs_attention=True).update(needs_attention=False)
            else:
                rows = rows.filter(needs_attention=False)
        failures = 0
        for pk, doi in list(rows.order_by("pk").values_list("pk", "doi")):
            try:
                outcome = doi_sync(outbox_pk=pk)
            except DoiUnavailable as exc:
                outcome = f"registrar unavailable ({exc})"
                failures += 1
            if outcome == "rejected":
                failures += 1
                outcome += f": {DoiOutbox.objects.get(pk=pk).last_error}"
            self.stdout.write(f"{doi}: {outcome}")
        if failures:
            raise CommandError(f"{failures} DOI(s) could not be synced; they stay pending.")
