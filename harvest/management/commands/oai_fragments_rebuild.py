"""Write the stored OAI-PMH payloads of every item (harvest.OaiFragment), e.g. after upgrading an installation
that had none, or after changing an export: pages then read text instead of building each record."""

from django.core.management.base import BaseCommand

from harvest.provider.fragments import fragments_rebuild_all


class Command(BaseCommand):
    help = "Rewrite every OAI-PMH item's stored oai_dc and oai_datacite payloads."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=1000, help="versions per transaction")

    def handle(self, *args, batch: int, **options):
        written = fragments_rebuild_all(batch=batch)
        self.stdout.write(f"Wrote the OAI-PMH payloads of {written} version(s).")
