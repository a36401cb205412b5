"""python manage.py harvest URL [--set S] [--from DATE] [--prefix oai_dc|oai_datacite]: import another
repository's records over OAI-PMH, so that data references to their DOIs show titles and creators.

The first run harvests everything in the selection; later runs without --from ask only for what changed since
the previous complete run. A progress bar runs on a terminal (tqdm), then one line sums up. Every failure of the
harvest itself (bad URL or date, unreachable host, not OAI-PMH, an OAI-PMH error) is a one-line error and exit
status 1; "noRecordsMatch" is no failure, just nothing new. Records whose metadata cannot be read are listed, the
others are imported, and the exit status is 1.
"""

from datetime import UTC, date, datetime
from typing import Self

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from harvest.harvester.services import harvest_source_register, harvest_source_run
from harvest.models import MetadataPrefix
from repository.errors import NbarchiveError


class Command(BaseCommand):
    help = "Harvest the records of an OAI-PMH repository (ListRecords), incrementally after the first run."

    def add_arguments(self, parser):
        parser.add_argument("url", help="The OAI-PMH base URL, e.g. https://zenodo.org/oai2d")
        parser.add_argument("--set", dest="set_spec", default="", help="Harvest only this set (setSpec).")
        parser.add_argument("--from", dest="from_date", default="",
                            help="Only records changed since this UTC date (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ); "
                                 "default: since the last complete harvest of this URL.")
        parser.add_argument("--prefix", default=MetadataPrefix.OAI_DC,
                            help=f"Metadata format: {' or '.join(MetadataPrefix.values)} (default oai_dc).")
        parser.add_argument("--retries", type=int, default=2,
                            help="Retries of a request that fails to connect or is answered 429 or 502-504 "
                                 "(default 2).")

    def handle(self, *args, url, set_spec, from_date, prefix, retries, **options):
        from_value = _parse_from(from_date) if from_date else None
        try:
            source = harvest_source_register(base_url=url, set_spec=set_spec, metadata_prefix=prefix)
            with _ProgressBar(self.stderr) as bar:
                summary = harvest_source_run(source_pk=source.pk, from_date=from_value, progress=bar.advance,
                                             retries=max(retries, 0))
        except NbarchiveError as exc:
            raise CommandError(exc.detail) from exc
        source.refresh_from_db()
        what = f"{source.repository_name or source.base_url}" + (f", set {source.set_spec}" if source.set_spec else "")
        since = f" since {summary.from_}" if summary.from_ else ""
        if not summary.seen:
            self.stdout.write(f"Nothing new from {what}{since}.")
            return
        for failure in summary.failures:
            self.stderr.write(f"Could not read {failure}")
        self.stdout.write(f"Harvested {what}{since}: {summary.line()}.")
        if summary.failed:
            raise CommandError(f"{summary.failed} record(s) could not be read; the others were imported.")


def _parse_from(value: str) -> date | datetime:
    value = value.strip()
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--from {value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ (UTC).") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class _ProgressBar:
    """tqdm on the command's stderr, shown only on a terminal; the total comes from completeListSize if sent."""

    def __init__(self, stderr):
        self._stream = _BarStream(stderr)
        self._bar = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._bar is not None:
            self._bar.close()

    def advance(self, count: int, total: int | None) -> None:
        if self._bar is None:
            self._bar = tqdm(total=total, unit=" records", file=self._stream, disable=None, dynamic_ncols=True)
        elif total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(count)


class _BarStream:
    """A file for tqdm over Django's OutputWrapper, which would otherwise end each of tqdm's writes with a newline
    (and colour it as an error)."""

    def __init__(self, wrapper):
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, style_func=str, ending="")

    def flush(self) -> None:
        self._wrapper.flush()

    def isatty(self) -> bool:
        return self._wrapper.isatty()
