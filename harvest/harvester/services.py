"""Harvesting other OAI-PMH repositories into HarvestSource / HarvestedRecord.

`harvest_source_register(base_url=..., set_spec=..., metadata_prefix=...)` creates or updates the source for a base
URL; changing its set or format forgets `harvested_until`, since what was harvested before was another selection.

`harvest_source_run(source_pk=..., from_date=None, progress=None, client=None)` harvests ListRecords and upserts
every item by (source, OAI identifier), one transaction per page, so a harvest that fails half-way keeps the pages
it read and a repeated harvest changes nothing (the counts then say "unchanged"). An item the source reports as
deleted keeps its row and its last metadata, with `deleted` set. Without `from_date` the harvest is incremental:
it asks for items from `source.harvested_until` on, the latest datestamp of the previous complete harvest; that
item comes again (`from` is inclusive), which is harmless and leaves no gap on sources whose datestamps tie.

Errors: `InvalidInput` (a URL that is not http(s), an unknown metadata format); harvest.harvester.client's
`SourceUnreachable`, `NotOaiPmh` and `OaiProtocolError`, after which `harvested_until` is left as it was and
`last_run_outcome` says why. An item whose metadata cannot be read is not an error of the harvest: it is counted
as failed, its reason is in `HarvestSummary.failures`, and its previous row (if any) is left untouched.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from harvest.harvester.client import HarvestError, HarvestItem, OaiClient, one_line
from harvest.harvester.metadata import MetadataUnreadable, RecordMetadata, parse_metadata
from harvest.models import HarvestedRecord, HarvestSource, MetadataPrefix
from repository.errors import InvalidInput

# Reasons for failed items beyond this many are counted, not kept.
MAX_FAILURE_REASONS = 20
# The fields a harvest writes; `created` stays the time the item was first seen.
_UPSERT_FIELDS = ["datestamp", "deleted", "set_specs", "doi", "identifiers", "title", "creators", "publication_year",
                  "resource_type", "metadata_prefix", "raw_metadata", "updated"]
_COMPARED_FIELDS = [f for f in _UPSERT_FIELDS if f != "updated"]
_KEPT_WHEN_DELETED = ["doi", "identifiers", "title", "creators", "publication_year", "resource_type",
                      "metadata_prefix", "raw_metadata"]

Progress = Callable[[int, int | None], None]  # (items just processed, items in the whole list if known)


@dataclass
class HarvestSummary:
    created: int = 0
    updated: int = 0
    deleted: int = 0  # items newly marked deleted (new ones included)
    unchanged: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # "<identifier>: <reason>", the first MAX_FAILURE_REASONS
    from_: str = ""  # the `from` argument sent, '' for a complete harvest

    @property
    def seen(self) -> int:
        return self.created + self.updated + self.deleted + self.unchanged + self.failed

    def line(self) -> str:
        return (f"{self.created} new, {self.updated} updated, {self.deleted} deleted, {self.unchanged} unchanged, "
                f"{self.failed} failed")


def harvest_source_register(*, base_url: str, set_spec: str = "",
                            metadata_prefix: str = MetadataPrefix.OAI_DC) -> HarvestSource:
    base_url = base_url.strip()
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"Not an http(s) URL: {base_url!r}")
    if parts.query or parts.fragment:
        raise InvalidInput(f"Give the OAI-PMH base URL without ?arguments or #fragment: {base_url!r}")
    if len(base_url) > HarvestSource._meta.get_field("base_url").max_length:
        raise InvalidInput("The URL is too long.")
    if len(set_spec) > HarvestSource._meta.get_field("set_spec").max_length:
        raise InvalidInput("The set is too long.")
    if metadata_prefix not in MetadataPrefix.values:
        known = ", ".join(MetadataPrefix.values)
        raise InvalidInput(f"Unknown metadata format {metadata_prefix!r}; use one of {known}")
    with transaction.atomic():
        source, created = HarvestSource.objects.select_for_update().get_or_create(
            base_url=base_url, defaults={"set_spec": set_spec, "metadata_prefix": metadata_prefix})
        if not created and (source.set_spec, source.metadata_prefix) != (set_spec, metadata_prefix):
            source.set_spec, source.metadata_prefix, source.harvested_until = set_spec, metadata_prefix, None
            source.save(update_fields=["set_spec", "metadata_prefix", "harvested_until", "updated"])
    return source


def harvest_source_run(*, source_pk: int, from_date: date | datetime | None = None, progress: Progress | None = None,
                       retries: int = 2, client: OaiClient | None = None) -> HarvestSummary:
    """Harvest the source once; see the module docstring. `from_date` overrides the incremental start; `retries`
    is how often one request is retried after a connection failure or a 503 (ignored when `client` is given)."""
    source = HarvestSource.objects.get(pk=source_pk)
    summary = HarvestSummary()
    own_client = client is None
    client = client or OaiClient(source.base_url, retries=retries)
    latest = None
    try:
        identity = client.identify()
        source.repository_name = identity.repository_name[:300]
        if identity.granularity in HarvestSource.Granularity.values:
            source.granularity = identity.granularity
        summary.from_ = _oai_date(from_date if from_date is not None else source.harvested_until, source.granularity)
        for page in client.list_records(metadata_prefix=source.metadata_prefix, set_spec=source.set_spec,
                                        from_=summary.from_):
            page_latest = _store_page(source, page.items, summary)
            latest = max(filter(None, (latest, page_latest)), default=None)
            if progress:
                progress(len(page.items), page.complete_list_size)
    except HarvestError as exc:
        _record_outcome(source, f"failed: {exc.detail}", harvested_until=None)
        raise
    finally:
        if own_client:
            client.close()
    if latest is not None:
        # A datestamp in the future (a wrong clock at the source) must not make every later harvest ask for nothing.
        latest = min(latest, timezone.now())
    outcome = summary.line() if summary.seen else "nothing new"
    _record_outcome(source, outcome, harvested_until=max(filter(None, (source.harvested_until, latest)), default=None))
    return summary


def _store_page(source: HarvestSource, items: list[HarvestItem], summary: HarvestSummary) -> datetime | None:
    """Upsert one page's items; returns the latest datestamp among those read."""
    rows: dict[str, HarvestedRecord] = {}
    for item in items:
        try:
            rows[item.identifier] = _record_row(source, item)
        except MetadataUnreadable as exc:
            summary.failed += 1
            if len(summary.failures) < MAX_FAILURE_REASONS:
                summary.failures.append(one_line(f"{item.identifier or '(no identifier)'}: {exc}"))
    if not rows:
        return None
    with transaction.atomic():
        existing = {r.oai_identifier: r for r in HarvestedRecord.objects.filter(
            source=source, oai_identifier__in=list(rows))}
        changed = []
        for identifier, row in rows.items():
            before = existing.get(identifier)
            if row.deleted and before is not None:
                # Keep what we knew: a deleted item comes without metadata, and its title still names what was cited.
                for name in _KEPT_WHEN_DELETED:
                    setattr(row, name, getattr(before, name))
            if before is None:
                summary.deleted += row.deleted
                summary.created += not row.deleted
            elif all(getattr(before, f) == getattr(row, f) for f in _COMPARED_FIELDS):
                summary.unchanged += 1
                continue
            elif row.deleted and not before.deleted:
                summary.deleted += 1
            else:
                summary.updated += 1
            changed.append(row)
        # An upsert rather than insert-or-update, so that two harvests of one source at once cannot collide.
        HarvestedRecord.objects.bulk_create(changed, update_conflicts=True,
                                            unique_fields=["source", "oai_identifier"], update_fields=_UPSERT_FIELDS)
    return max(row.datestamp for row in rows.values())


def _record_row(source: HarvestSource, item: HarvestItem) -> HarvestedRecord:
    """The row `item` makes, before it meets the stored one; raises MetadataUnreadable."""
    if not item.identifier:
        raise MetadataUnreadable("a record without a header identifier")
    if len(item.identifier) > HarvestedRecord._meta.get_field("oai_identifier").max_length:
        raise MetadataUnreadable("the identifier is too long")
    row = HarvestedRecord(source=source, oai_identifier=item.identifier, datestamp=_parse_datestamp(item.datestamp),
                          deleted=item.deleted, set_specs=list(item.set_specs), metadata_prefix=source.metadata_prefix,
                          updated=timezone.now())
    if item.deleted:
        return row
    if item.metadata is None:
        raise MetadataUnreadable("a record without metadata")
    metadata: RecordMetadata = parse_metadata(source.metadata_prefix, item.metadata)
    if len(metadata.doi) > HarvestedRecord._meta.get_field("doi").max_length:
        raise MetadataUnreadable("the DOI is too long")
    row.doi = metadata.doi
    row.identifiers = metadata.identifiers
    row.title = metadata.title
    row.creators = metadata.creators
    row.publication_year = metadata.publication_year
    row.resource_type = metadata.resource_type
    row.raw_metadata = item.metadata.decode("utf-8")
    return row


def _parse_datestamp(value: str) -> datetime:
    """An OAI-PMH datestamp (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ, UTC) as an aware datetime."""
    try:
        if len(value) == 10:
            return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MetadataUnreadable(f"the datestamp {value!r} is not a UTC date or time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _oai_date(value: date | datetime | None, granularity: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, datetime):
        return value.isoformat()  # a day is understood by every source
    value = value.astimezone(UTC)
    if granularity == HarvestSource.Granularity.DAY:
        return value.date().isoformat()
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _record_outcome(source: HarvestSource, outcome: str, *, harvested_until: datetime | None) -> None:
    source.last_run_at = timezone.now()
    source.last_run_outcome = outcome
    fields = ["repository_name", "granularity", "last_run_at", "last_run_outcome", "updated"]
    if harvested_until is not None:
        source.harvested_until = harvested_until
        fields.append("harvested_until")
    source.save(update_fields=fields)
