"""Reads behind the verbs: which versions are OAI-PMH items, and one page of them.

The items are the accepted versions (publishing, published, withdrawn), which are exactly those with a datestamp
(`public_changed_at`). Lists are ordered by (public_changed_at, id) and paged by value over the partial index
`version_public_changed`, so the page after a given position costs the same at the start and at the end of a
list of millions: the database reads page size + 1 index entries from that position on, never skips an offset.

A page costs one query whatever its size (and the first page of a long list one more, for completeListSize):
each item's header columns, the communities that accepted it (its sets, as a correlated subquery) and its stored
payload in the page's format (harvest.OaiFragment, joined; see fragments.py), read as plain values rather than
model instances, the datestamp as text. Headers are built from the page's columns, so they are always current; a
payload is served only if its datestamp is the item's (compared in the query), and one that is missing or out of
date is built on the fly (fragments.fragments_for). The response is then a concatenation of headers and stored
text (document.records): no payload is parsed or serialised again.
"""

import datetime
import json
from collections import defaultdict

from django.db import connections, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Min, Q, QuerySet

from harvest.provider.formats import MetadataFormat
from harvest.provider.fragments import fragments_for
from moderation.selectors import community_slugs_accepting, community_slugs_accepting_column
from repository.models import Version
from repository.querying import AnyOf, UtcMomentText, utc_moment
from repository.selectors import versions_list_public_changes


def items() -> QuerySet:
    return versions_list_public_changes()


def items_selection(*, metadata_format: MetadataFormat, set_filter: Q | None, since: datetime.datetime | None,
                    before: datetime.datetime | None) -> QuerySet:
    """The items of a list request, in list order; `since`/`before` bound the datestamps, half-open."""
    return _filtered(items(), metadata_format, set_filter, since, before).order_by("public_changed_at", "id")


# Lists up to this many items are counted exactly for completeListSize; longer ones may be estimated.
EXACT_COUNT_LIMIT = 10_000
# On PostgreSQL, a list the planner expects to be this long is not counted at all.
ESTIMATE_ONLY_FROM = 100_000


def items_estimate(*, metadata_format: MetadataFormat, set_filter: Q | None, since: datetime.datetime | None,
                   before: datetime.datetime | None) -> int:
    """How many items the list has (its completeListSize): exact up to EXACT_COUNT_LIMIT, an estimate above.

    Counting a million items costs a tenth of a second even from an index, which made the first page of a list
    several times slower than any other. On PostgreSQL the planner's estimate from its statistics costs a
    millisecond, and is taken as it is for a long list (from ESTIMATE_ONLY_FROM items), as the spec allows:
    completeListSize is an estimate, and the last, empty token states how many items were really sent. Shorter
    lists, and lists on other databases, are counted up to EXACT_COUNT_LIMIT + 1 items (a millisecond or two),
    exactly when they are no longer than that.

    The count leaves the state test out: only accepted versions have a datestamp, so the number is the same, and
    PostgreSQL counts from the partial index alone (an index-only scan). The list itself keeps the state test, so
    a version that is not public is never shown.
    """
    unfiltered = Version.objects.filter(public_changed_at__isnull=False)
    selection = _filtered(unfiltered, metadata_format, set_filter, since, before).order_by().values("pk")
    planned = None
    if connections[selection.db].vendor == "postgresql":
        planned = int(json.loads(selection.explain(format="json"))[0]["Plan"]["Plan Rows"])
        if planned >= ESTIMATE_ONLY_FROM:
            return planned
    counted = selection[: EXACT_COUNT_LIMIT + 1].count()
    if counted <= EXACT_COUNT_LIMIT:
        return counted
    return max(planned, counted) if planned is not None else selection.count()


def _filtered(selection: QuerySet, metadata_format: MetadataFormat, set_filter: Q | None,
              since: datetime.datetime | None, before: datetime.datetime | None) -> QuerySet:
    selection = selection.filter(metadata_format.available)
    if set_filter is not None:
        selection = selection.filter(set_filter)
    if since is not None:
        selection = selection.filter(public_changed_at__gte=since)
    if before is not None:
        selection = selection.filter(public_changed_at__lt=before)
    return selection


class Item:
    """One OAI-PMH item as a page reads it: the header's columns, its sets, and its payload in the page's format
    (None for headers only, and for a deleted item, which has none). Plain values, no model instance.

    The datestamp comes as UTC text (querying.UtcMomentText), which the header shows sliced; it is parsed only
    where the exact moment is needed, for the position a resumptionToken carries."""

    __slots__ = ("pk", "public_id", "number", "state", "changed", "resource_type", "oai_communities", "metadata")

    def __init__(self, pk, public_id, number, state, changed, resource_type, communities):
        self.pk, self.public_id, self.number, self.state = pk, public_id, number, state
        self.changed, self.resource_type = changed, resource_type
        self.oai_communities = sorted(communities.split(" ")) if communities else []
        self.metadata = None

    @property
    def deleted(self) -> bool:
        return self.state == Version.State.WITHDRAWN

    @property
    def datestamp(self) -> str:
        """protocol.datestamp(public_changed_at), from the text."""
        changed = self.changed
        return f"{changed[:10]}T{changed[11:19]}Z"

    @property
    def public_changed_at(self) -> datetime.datetime:
        return utc_moment(self.changed)


def items_page(selection: QuerySet, *, after: tuple[datetime.datetime, int] | None, size: int,
               metadata_format: MetadataFormat | None) -> tuple[list[Item], bool]:
    """Up to `size` items after the position `after` (exclusive), and whether more follow.

    With a format, each item's stored payload (fragments.py) is read in the same query; without one (headers
    only), just the sets.
    """
    if after is not None:
        datestamp, pk = after
        # `>=` on the datestamp alone lets the database start the index scan at the position; the OR settles ties.
        selection = selection.filter(public_changed_at__gte=datestamp).filter(
            Q(public_changed_at__gt=datestamp) | Q(id__gt=pk))
    page = items_read(selection[: size + 1], metadata_format)
    return page[:size], len(page) > size


def items_read(selection: QuerySet, metadata_format: MetadataFormat | None) -> list[Item]:
    """The items of `selection` (already ordered and sliced), with their sets and payloads, in one query.

    The query reads plain values: each item's header columns, its communities (as one column), and with a format
    its stored payload and whether that is current (the fragment's datestamp compared in the database, so that no
    timestamp is parsed per row). A payload that is not current is built (fragments_for), never served.
    """
    columns = {"changed": UtcMomentText("public_changed_at"), "communities": community_slugs_accepting_column()}
    if metadata_format is not None:
        columns["payload"] = F(f"oai_fragment__{metadata_format.prefix}")
        columns["current"] = ExpressionWrapper(Q(oai_fragment__datestamp=F("public_changed_at")),
                                               output_field=BooleanField())
    rows = _serial_read(selection.annotate(**columns).values_list(
        "id", "record__public_id", "number", "state", "changed", "resource_type", "communities",
        *(("payload", "current") if metadata_format is not None else ())))
    items, stale = [], []
    withdrawn = Version.State.WITHDRAWN
    for row in rows:
        item = Item(*row[:7])
        if metadata_format is not None and item.state != withdrawn:
            payload, current = row[7:]
            if payload and current:
                item.metadata = payload
            else:
                stale.append(item)
        items.append(item)
    if stale:
        fragments = fragments_for(item.pk for item in stale)
        for item in stale:
            item.metadata = getattr(fragments[item.pk], metadata_format.prefix)
    return items


def _serial_read(selection: QuerySet) -> list:
    """The rows of `selection`; on PostgreSQL without parallel workers (SET LOCAL, for this transaction only).

    For a page deep in a list the planner expects tens of thousands of rows past the position and picks a parallel
    plan (Gather Merge), which, for the thousand rows a page takes, measured two to six times slower than the plain
    index scan and keeps two more processes busy per harvester.
    """
    connection = connections[selection.db]
    if connection.vendor != "postgresql":
        return list(selection)
    with transaction.atomic(using=selection.db, savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        return list(selection)


def item_prefetch(versions: list[Version], metadata_format: MetadataFormat | None) -> None:
    """Fetch what the headers and, with a format, the metadata of `versions` read (deleted ones have none)."""
    if not versions:
        return
    _communities_attach(versions)
    public = [v for v in versions if v.state != Version.State.WITHDRAWN]
    if metadata_format is None or not public:
        return
    for owner, relation, queryset in metadata_format.prefetch:
        prefetch_rows([v.record for v in public] if owner == "record" else public, relation, queryset)


def _communities_attach(versions: list) -> None:
    """The communities of each item (sets.version_set_specs), in one query."""
    slugs = community_slugs_accepting({v.pk for v in versions})
    for version in versions:
        version.oai_communities = sorted(slugs.get(version.pk, ()))


def prefetch_rows(instances: list, relation: str, queryset: QuerySet) -> None:
    """What prefetch_related does for one reverse foreign key (`version.creators`, `record.versions`), in one
    query, so that `instance.<relation>.all()` needs none.

    Django's prefetch_related builds a filtered QuerySet for every instance, which for a page of a hundred
    versions costs more than the queries (about half of the page's time). This keeps plain lists in the same
    cache instead: iterating `.all()` works as usual, and anything that would build a new query from the cache
    (`.filter()`, `.count()`) fails loudly rather than answering from rows of another scope. The rows' own link
    back (`creator.version`) is set, as prefetch_related does.
    """
    field = instances[0]._meta.get_field(relation).field  # the ForeignKey on the rows' side
    rows = defaultdict(list)
    for row in queryset.filter(AnyOf(F(field.attname), {instance.pk for instance in instances})):
        rows[getattr(row, field.attname)].append(row)
    cache_name = field.remote_field.cache_name
    for instance in instances:
        mine = rows[instance.pk]
        for row in mine:
            field.set_cached_value(row, instance)
        if not hasattr(instance, "_prefetched_objects_cache"):
            instance._prefetched_objects_cache = {}
        instance._prefetched_objects_cache[cache_name] = mine


def item_get(public_id: str, number: int) -> Version | None:
    return items().filter(record__public_id=public_id, number=number).first()


def item_read(version: Version, metadata_format: MetadataFormat) -> Item:
    """One item as GetRecord shows it, from its stored payload like a page."""
    return items_read(items().filter(pk=version.pk), metadata_format)[0]


def earliest_datestamp() -> datetime.datetime | None:
    return items().aggregate(earliest=Min("public_changed_at"))["earliest"]
