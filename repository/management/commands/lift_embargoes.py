"""python manage.py lift_embargoes [--on YYYY-MM-DD]: open the files of every published version whose embargo has
ended (services/embargoes.py; the beat task `embargoes_lift_due_task` runs the same service daily). One line per
version lifted; nothing printed when none is due."""

import datetime

from django.core.management.base import BaseCommand, CommandError

from repository.services.embargoes import embargoes_lift_due


def _day(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--on takes a day as YYYY-MM-DD, not {text!r}.") from None


class Command(BaseCommand):
    help = "Lift every embargo whose day has come: the files open, DataCite and OAI-PMH harvesters are updated."

    def add_arguments(self, parser):
        parser.add_argument("--on", type=str, default=None,
                            help="Lift the embargoes ended by this day (YYYY-MM-DD) instead of today; for catching "
                            "up after downtime it is not needed: every past day is included.")

    def handle(self, *args, on=None, **options):
        for lifted in embargoes_lift_due(on=_day(on) if on else None):
            self.stdout.write(f"{lifted['record_id']} v{lifted['number']} ({lifted['doi']}): embargo until "
                              f"{lifted['embargo_until'].isoformat()} lifted, files open")
