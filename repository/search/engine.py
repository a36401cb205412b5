"""Running a search: the query, the filters, the facets with their counts, the order and the page.

Each facet is counted with every filter applied except its own, so that ticking a second licence widens the
result instead of emptying the other licences' counts (what InvenioRDM's post-filters do).

The counts (facets and total) cost a pass over every match, which for a common word is a tenth of the archive,
and so does the page of hits ranked by best match (every match is scored). So both are cached (Django's cache,
SEARCH_COUNTS_CACHE_SECONDS) per query, filters and scope, under the index's generation (SearchIndexState, bumped
in the transaction of every change to the documents): what is cached is exact for the index it is read against,
never stale. Of the page only the documents' ids are cached; the documents are read afresh. The `mostviewed` order
follows the usage counts, which change without a new generation: its page is always asked of the database.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet

from repository import hooks
from repository.errors import InvalidInput
from repository.models import FileAccess, ResourceType, SearchDocument, SearchIndexState, SearchTerm, Verdict
from repository.search.backends import JSON_COLUMNS, backend, one_pass_facet_sql, term_facet_sql
from repository.search.query import ParsedQuery, Term, normalise_orcid, parse_query

SORTS = ("bestmatch", "newest", "mostviewed")
MAX_PAGE_SIZE = 100
# Deep pages cost as much as all the pages before them; harvesters have OAI-PMH for walking everything.
MAX_RESULT_WINDOW = 10_000
MAX_FILTER_VALUES = 20
FACET_SIZE = 10

# facet name -> the SearchDocument column it counts, or the SearchTerm field
COLUMN_FACETS = {"community": "community", "resource_type": "resource_type", "verdict": "verdict",
                 "license": "license", "year": "publication_year", "access": "access"}
TERM_FACETS = {"keyword": "keyword", "creator": "creator"}
FACETS = (*COLUMN_FACETS, *TERM_FACETS)
_CHOICES = {"resource_type": dict(ResourceType.choices), "verdict": dict(Verdict.choices),
            "access": dict(FileAccess.choices)}


@dataclass
class SearchParams:
    q: str = ""
    sort: str = ""  # empty: bestmatch with a query, newest without
    page: int = 1
    size: int = 10
    filters: dict[str, list[str]] = field(default_factory=dict)
    all_versions: bool = False


@dataclass
class SearchResult:
    params: SearchParams
    sort: str
    total: int
    hits: list[SearchDocument]
    aggregations: dict[str, list[dict]]

    @property
    def has_next(self) -> bool:
        return self.params.page * self.params.size < min(self.total, MAX_RESULT_WINDOW)


def search_params_check(params: SearchParams) -> None:
    """InvalidInput, with a message per parameter, for what cannot be searched."""
    errors: dict[str, list[str]] = {}
    if params.sort and params.sort not in SORTS:
        errors["sort"] = [f"One of {', '.join(SORTS)}."]
    if params.page < 1:
        errors["page"] = ["Pages are numbered from 1."]
    if not 1 <= params.size <= MAX_PAGE_SIZE:
        errors["size"] = [f"Between 1 and {MAX_PAGE_SIZE}."]
    elif params.page >= 1 and (params.page - 1) * params.size >= MAX_RESULT_WINDOW:
        errors["page"] = [f"Only the first {MAX_RESULT_WINDOW} results can be paged through; narrow the search."]
    for name, values in params.filters.items():
        if len(values) > MAX_FILTER_VALUES:
            errors[name] = [f"At most {MAX_FILTER_VALUES} values."]
        elif name == "year" and not all(v.isdigit() and len(v) == 4 for v in values):
            errors[name] = ["A year, such as 2024."]
        elif name in _CHOICES and not all(v in _CHOICES[name] for v in values):
            errors[name] = [f"One of {', '.join(_CHOICES[name])}."]
    if errors:
        raise InvalidInput("Some search parameters are not valid.", field_errors=errors)


def search_run(params: SearchParams, *, within: Q | None = None) -> SearchResult:
    """The page of hits, the total and the facets for `params`; `within` narrows the whole search (a community
    page searches only its records). InvalidInput for a bad query or parameter."""
    search_params_check(params)
    parsed = parse_query(params.q)
    engine = backend()
    base = SearchDocument.objects.all()
    if within is not None:
        base = base.filter(within)
    if not params.all_versions and not parsed.names_a_doi:
        base = base.filter(is_latest=True)
    base = base.filter(_query_condition(parsed, engine))

    filtered = base.filter(_filters_condition(params.filters))
    sort = params.sort or ("bestmatch" if parsed.ranking_terms else "newest")
    if sort == "bestmatch" and parsed.ranking_terms:
        ordered = filtered.annotate(rank=engine.rank(parsed.ranking_terms)).order_by("-rank", "-published_at", "-pk")
    elif sort == "mostviewed":
        # The record's unique views, copied onto its documents by the usage aggregation: an indexed column, so
        # the first page of an unfiltered sort is read from the index rather than sorting every match.
        ordered = filtered.order_by("-views", "-published_at", "-pk")
    else:
        ordered = filtered.order_by("-published_at", "-pk")
    start = (params.page - 1) * params.size
    cached = _SearchCache(params, within, sort)
    with engine.settings_for_search() if cached.needs_database else nullcontext():
        # Only the ids are ranked: the top-k sort then keeps a few small rows in memory instead of sorting every
        # match's whole document (at a million versions a common word's ~100,000 wide rows spilled to disk).
        ids = cached.page_ids(lambda: list(ordered.values_list("pk", flat=True)[start:start + params.size]))
        aggregations, total = cached.counts(lambda: _aggregations(base, params.filters, filtered))
    documents = SearchDocument.objects.select_related("record").in_bulk(ids)
    hits = [documents[pk] for pk in ids if pk in documents]
    _community_labels(aggregations["community"])
    return SearchResult(params=params, sort=sort, total=total, hits=hits, aggregations=aggregations)


class _SearchCache:
    """One search's entries in the cache: its counts, and the ids of its page of hits in order. Keyed by the
    index's generation, so an entry is only ever read against the index it was computed on."""

    def __init__(self, params: SearchParams, within: Q | None, sort: str):
        self.seconds = settings.SEARCH_COUNTS_CACHE_SECONDS
        self.cached: dict = {}
        if self.seconds <= 0:
            return
        generation = SearchIndexState.objects.filter(pk=1).values_list("generation", flat=True).first()
        if generation is None:  # the row is gone (a flushed database): nothing could make an entry stale
            self.seconds = 0
            return
        search = json.dumps([params.q.strip(), sorted((n, sorted(v)) for n, v in params.filters.items() if v),
                             params.all_versions, repr(within)])
        prefix = f"search:{generation}:{hashlib.sha256(search.encode()).hexdigest()}"
        self.counts_key = f"{prefix}:counts"
        self.page_key = None if sort == "mostviewed" else f"{prefix}:{sort}:{params.page}:{params.size}"
        self.cached = cache.get_many([k for k in (self.counts_key, self.page_key) if k])

    @property
    def needs_database(self) -> bool:
        return self.seconds <= 0 or self.page_key is None or len(self.cached) < 2

    def page_ids(self, read: Callable[[], list[int]]) -> list[int]:
        if self.seconds <= 0 or self.page_key is None:
            return read()
        ids = self.cached.get(self.page_key)
        if ids is None:
            ids = read()
            cache.set(self.page_key, ids, self.seconds)
        return ids

    def counts(self, count: Callable[[], tuple[dict, int]]) -> tuple[dict[str, list[dict]], int]:
        if self.seconds <= 0:
            return count()
        counted = self.cached.get(self.counts_key)
        if counted is None:
            counted = count()
            cache.set(self.counts_key, counted, self.seconds)
        return counted


def _query_condition(parsed: ParsedQuery, engine) -> Q:
    condition = Q()
    for group in parsed.groups:
        alternatives = Q()
        for term in group:
            alternatives |= _term_condition(term, engine)
        condition &= alternatives
    return condition


def _term_condition(term: Term, engine) -> Q:
    if term.is_text:
        match = engine.match(term)
    elif term.field == "doi":
        # A version DOI names that version (even an old one); a concept DOI the record, i.e. its latest.
        match = Q(doi=term.text) | Q(concept_doi=term.text, is_latest=True)
    else:  # orcid, keyword: exact values
        match = Q(pk__in=SearchTerm.objects.filter(field=term.field, value=term.text).values("document_id"))
    return ~match if term.negated else match


def _filters_condition(filters: dict[str, list[str]], *, leave_out: str | None = None) -> Q:
    condition = Q()
    for name, values in filters.items():
        if name == leave_out or not values:
            continue
        if name in COLUMN_FACETS:
            condition &= Q(**{f"{COLUMN_FACETS[name]}__in": values})
        elif name == "creator":
            orcids = [o for o in map(normalise_orcid, values) if o]
            names = [v.lower() for v in values if not normalise_orcid(v)]
            terms = SearchTerm.objects.filter(Q(field="orcid", value__in=orcids)
                                              | Q(field="creator", value__in=names))
            condition &= Q(pk__in=terms.values("document_id"))
        elif name in TERM_FACETS:
            terms = SearchTerm.objects.filter(field=TERM_FACETS[name], value__in=[v.lower() for v in values])
            condition &= Q(pk__in=terms.values("document_id"))
    return condition


def _aggregations(base: QuerySet, filters: dict[str, list[str]],
                  filtered: QuerySet) -> tuple[dict[str, list[dict]], int]:
    """The facets' buckets (community keys not yet labelled), and the total.

    The column facets without a filter of their own are all counted over the filtered documents in one scan
    (GROUP BY all their columns, summed up here; the rows add up to the total); a facet with a filter of its own
    is counted without it, in a query of its own."""
    active = {name for name, values in filters.items() if values}
    counts: dict[str, Counter] = {name: Counter() for name in FACETS}
    shared = [name for name in COLUMN_FACETS if name not in active]
    total = None
    if shared and backend().counts_in_one_pass:
        # The term facets without a filter of their own are counted over the same rows, in the same pass.
        together = [name for name in TERM_FACETS if name not in active]
        total = _count_in_one_pass(filtered, shared, together, counts)
        shared = [*shared, *together]
    elif shared:
        total = 0
        for row in filtered.values(*(COLUMN_FACETS[n] for n in shared)).annotate(n=Count("pk")).order_by():
            total += row["n"]
            for name in shared:
                counts[name][row[COLUMN_FACETS[name]]] += row["n"]
    for name in FACETS:
        if name in shared:
            continue
        documents = filtered if name not in active else base.filter(_filters_condition(filters, leave_out=name))
        if name in COLUMN_FACETS:
            column = COLUMN_FACETS[name]
            rows = documents.values(column).annotate(n=Count("pk")).order_by()
            counts[name].update({row[column]: row["n"] for row in rows})
        else:
            counts[name].update(dict(_term_counts(documents, name)))

    aggregations = {}
    for name in FACETS:
        selected = {v.lower() for v in filters.get(name, [])}
        top = sorted(((str(k), n) for k, n in counts[name].items() if k not in ("", None)),
                     key=lambda item: (-item[1], item[0]))[:FACET_SIZE]
        aggregations[name] = [{"key": key, "doc_count": n, "label": _CHOICES.get(name, {}).get(key, key),
                               "is_selected": key.lower() in selected} for key, n in top]
    if total is None:
        total = filtered.count()
    return aggregations, total


def _count_in_one_pass(documents: QuerySet, column_names: list[str], term_names: list[str],
                       counts: dict[str, Counter]) -> int:
    """Count the column facets `column_names` and the term facets `term_names` over `documents` in one statement
    (PostgreSQL); returns the total."""
    columns = [COLUMN_FACETS[name] for name in column_names]
    sql, params = (documents.values(*columns, *(JSON_COLUMNS[n] for n in term_names)).order_by()
                   .query.sql_with_params())
    total = 0
    with connection.cursor() as cursor:
        cursor.execute(one_pass_facet_sql(backend(), columns, term_names, sql, FACET_SIZE), params)
        for part, *values, label, n in cursor.fetchall():
            if part == "columns":
                total += n
                for name, value in zip(column_names, values, strict=True):
                    counts[name][value] += n
            else:
                counts[part][label] += n
    return total


def _term_counts(documents: QuerySet, name: str) -> list[tuple[str, int]]:
    sql, params = documents.values(JSON_COLUMNS[name]).order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(term_facet_sql(backend(), name, sql, FACET_SIZE), params)
        return cursor.fetchall()


def _community_labels(buckets: list[dict]) -> None:
    names = hooks.community_names([b["key"] for b in buckets])
    for bucket in buckets:
        bucket["label"] = names.get(bucket["key"], bucket["key"])


def search_params_from_query(query) -> SearchParams:
    """SearchParams from a request's query string (a QueryDict: facet filters repeat, `license=MIT&license=CC0-1.0`);
    InvalidInput naming the parameter when a number is not one."""
    errors = {}

    def number(name: str, default: int) -> int:
        raw = (query.get(name) or "").strip()
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            errors[name] = ["A whole number."]
            return default

    def text(value: str) -> str:
        return value.replace("\x00", "")  # PostgreSQL refuses NUL in text; nobody searches for one

    params = SearchParams(
        q=text(query.get("q", "")), sort=(query.get("sort") or "").strip(), page=number("page", 1),
        size=number("size", 10),
        filters={name: [text(v) for v in query.getlist(name) if text(v).strip()]
                 for name in FACETS if query.getlist(name)},
        all_versions=(query.get("all_versions") or "").lower() in ("true", "1", "yes", "on"),
    )
    if errors:
        raise InvalidInput("Some search parameters are not valid.", field_errors=errors)
    return params
