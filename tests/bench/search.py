"""Benchmark: GET /api/records (search with facets) on PostgreSQL, through a real HTTP server.

    .venv/bin/python tests/bench/search.py                     # 20,000 versions: a few minutes
    .venv/bin/python tests/bench/search.py --records 1000000   # the issue's million (seeding takes a while)
    .venv/bin/python tests/bench/search.py --reseed            # drop the bench database first
    .venv/bin/python tests/bench/search.py --records 1000000 --cache-url redis://127.0.0.1:6379/9

1. Database: DATABASE_URL, or else postgres://postgres@127.0.0.1:5432/nbarchive_bench_search (created when
   missing). Migrated, topped up with `manage.py seed_records` to --records accepted versions (about 1 in 50
   withdrawn, 1 in 10 a second version), indexed when the index does not hold every public version, and
   analysed. The index is written in bulk (INSERT ... SELECT, GIN indexes built once: minutes for a million,
   where `search_reindex` takes hours); a sample is checked against search_index_version. A database seeded and
   indexed before is reused as it is (delete it with --reseed).
2. The app runs under gunicorn (--workers sync workers, DJANGO_DEBUG=0, persistent database connections) on a
   free port of 127.0.0.1, twice: with SEARCH_COUNTS_CACHE_SECONDS=0 (every answer counts its facets and total
   in the database: a search nobody asked before) and with the counts cached (a search asked before on the
   same index; --cache-url names the cache the workers share, else each worker has its own).
3. Four searches, each answered with all seven facets counted (the API always counts them):
   - word:    q=perovskites            (one topic word; 1 in 8 seeded records)
   - phrase:  q="thermal expansion"
   - creator: q=creator:Tanaka         (1 in 10 creators)
   - facet:   license=MIT              (no query: a filter alone)
   First one client (keep-alive session), --repeat requests of each in turns; then --clients concurrent
   clients (threads, a session each) doing the same. p50 and p95 per search. Figures only, no assertions.
   --explain prints EXPLAIN (ANALYZE, BUFFERS) of each search's SQL instead.
Everything the bench starts is stopped at the end; the database is kept.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench.oai import ensure_database, start_gunicorn, stop  # noqa: E402 (after the path is set)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/nbarchive_bench_search"
SEARCHES = {
    "word": {"q": "perovskites"},
    "phrase": {"q": '"thermal expansion"'},
    "creator": {"q": "creator:Tanaka"},
    "facet": {"license": "MIT"},
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000, help="accepted versions in the database")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--reseed", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--batch", type=int, default=5000, help="seed_records --batch")
    parser.add_argument("--repeat", type=int, default=30, help="requests of each search per client")
    parser.add_argument("--repeat-uncached", type=int, default=5,
                        help="requests of each search per client with the counts uncached (seconds each at 1M)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in the second round")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--cache-url", default="", help="CACHE_URL of the workers (a shared cache, e.g. redis)")
    parser.add_argument("--counts", choices=("uncached", "cached", "both"), default="both",
                        help="measure with the counts computed every time, cached, or both")
    parser.add_argument("--explain", action="store_true", help="print the query plans and stop")
    return parser.parse_args()


def prepare(records: int, batch: int) -> tuple[int, int]:
    """Migrate, seed up to `records`, index, analyse; returns (accepted versions, indexed versions)."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from repository.models import SearchDocument, Version
    from repository.search.indexing import SEARCHABLE_STATES

    call_command("migrate", verbosity=0)
    existing = Version.objects.filter(public_changed_at__isnull=False).count()
    if existing < records:
        print(f"seeding {records - existing} versions ({existing} already there)", flush=True)
        started = time.monotonic()
        call_command("seed_records", str(records - existing), batch=batch)
        print(f"seeded in {time.monotonic() - started:.0f} s", flush=True)
    public = Version.objects.filter(state__in=SEARCHABLE_STATES).count()
    if SearchDocument.objects.count() != public:
        print(f"indexing {public} public versions in bulk", flush=True)
        started = time.monotonic()
        index_in_bulk()
        print(f"indexed in {time.monotonic() - started:.0f} s", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        check_bulk_index()
    return Version.objects.filter(public_changed_at__isnull=False).count(), SearchDocument.objects.count()


# --- the index, in bulk ------------------------------------------------------------------------------------

# What search_reindex writes for a seeded version (no files, no runs, no usage counts), in three statements
# instead of a Python loop over a million versions; check_bulk_index() compares a sample with the real path.
_BULK_DOCUMENTS = """
INSERT INTO repository_searchdocument (version_id, record_id, number, is_latest, title, description, creators_text,
    keywords_text, notebook_text, creators, keywords, doi, concept_doi, community, resource_type, verdict, license,
    publication_year, access, embargo_until, published_at, views)
SELECT v.id, v.record_id, v.number, v.number = v.newest, v.title, v.description, COALESCE(c.names, ''),
    COALESCE((SELECT string_agg(k, ' ; ') FROM jsonb_array_elements_text(v.keywords) AS k), ''), '',
    COALESCE(c.list, '[]'::jsonb), v.keywords, lower(v.doi), lower(r.concept_doi), COALESCE(m.slug, ''),
    v.resource_type, '', v.license, extract(year FROM v.published_at AT TIME ZONE 'UTC')::int,
    CASE WHEN v.access_files = 'embargoed' AND v.embargo_until <= current_date THEN 'open' ELSE v.access_files END,
    CASE WHEN v.access_files = 'embargoed' AND v.embargo_until > current_date THEN v.embargo_until END,
    v.published_at, 0
FROM (SELECT *, max(number) OVER (PARTITION BY record_id) AS newest FROM repository_version
      WHERE state IN ('publishing', 'published')) AS v
JOIN repository_record AS r ON r.id = v.record_id
LEFT JOIN (SELECT version_id, string_agg(name, ' ; ' ORDER BY position) AS names,
                  jsonb_agg(jsonb_build_object('name', name, 'orcid', orcid, 'affiliation', affiliation)
                            ORDER BY position) AS list
           FROM repository_creator GROUP BY version_id) AS c ON c.version_id = v.id
LEFT JOIN (SELECT rr.version_id, min(cm.slug) AS slug FROM moderation_reviewrequest AS rr
           JOIN moderation_community AS cm ON cm.id = rr.community_id WHERE rr.state = 'accepted'
           GROUP BY rr.version_id) AS m ON m.version_id = v.id
"""
_BULK_TERMS = """
INSERT INTO repository_searchterm (document_id, field, value, label)
SELECT DISTINCT ON (document_id, field, value) document_id, field, value, label FROM (
    SELECT d.version_id AS document_id, 'keyword' AS field, left(lower(k.value), 300) AS value,
           left(k.value, 300) AS label, 0 AS position
    FROM repository_searchdocument AS d CROSS JOIN LATERAL jsonb_array_elements_text(d.keywords) AS k(value)
    UNION ALL
    SELECT c.version_id, 'creator', left(lower(c.name), 300), left(c.name, 300), c.position
    FROM repository_creator AS c JOIN repository_searchdocument AS d ON d.version_id = c.version_id
    UNION ALL
    SELECT c.version_id, 'orcid', upper(c.orcid), left(c.name, 300), c.position
    FROM repository_creator AS c JOIN repository_searchdocument AS d ON d.version_id = c.version_id
    WHERE c.orcid <> ''
) AS terms ORDER BY document_id, field, value, position
"""


def index_in_bulk() -> None:
    """Write every public version's search document and terms with INSERT ... SELECT (the GIN indexes are built
    once at the end, not updated a row at a time; the latest flag is written with the row, not updated after)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM repository_searchterm")
        cursor.execute("DELETE FROM repository_searchdocument")
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'repository_searchdocument' "
                       "AND indexdef LIKE '%USING gin%'")
        gin_indexes = [row[0] for row in cursor.fetchall()]
        for definition in gin_indexes:
            cursor.execute("DROP INDEX " + definition.split()[2])
        cursor.execute(_BULK_DOCUMENTS)
        cursor.execute(_BULK_TERMS)
        cursor.execute("UPDATE repository_searchindexstate SET generation = generation + 1")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # CREATE INDEX refuses to wait for deferred checks
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for definition in gin_indexes:
            cursor.execute(definition)


def check_bulk_index(sample: int = 50) -> None:
    """Rewrite a sample of documents through search_index_version and stop if any differs from its bulk twin."""
    from django.db import transaction
    from django.forms.models import model_to_dict

    from repository.models import SearchDocument, SearchTerm, Version
    from repository.search.indexing import search_index_version

    def snapshot(pk: int):
        document = model_to_dict(SearchDocument.objects.get(pk=pk))
        terms = sorted(SearchTerm.objects.filter(document_id=pk).values_list("field", "value", "label"))
        return document, terms

    pks = list(SearchDocument.objects.order_by("?").values_list("pk", flat=True)[:sample])
    with transaction.atomic():
        before = {pk: snapshot(pk) for pk in pks}
        for pk in pks:
            search_index_version(version=Version.objects.get(pk=pk))
        after = {pk: snapshot(pk) for pk in pks}
        transaction.set_rollback(True)
    differing = [pk for pk in pks if before[pk] != after[pk]]
    if differing:
        pk = differing[0]
        raise SystemExit(f"the bulk index differs from search_index_version for version {pk}:\n"
                         f"bulk: {before[pk]}\nreal: {after[pk]}")
    print(f"bulk index checked: {len(pks)} documents equal to what search_index_version writes")


# --- the measurements --------------------------------------------------------------------------------------

class Client:
    def __init__(self, base_url: str):
        import requests

        self.base_url = base_url
        self.session = requests.Session()

    def search(self, params: dict) -> tuple[float, int]:
        started = time.perf_counter()
        response = self.session.get(self.base_url, params=params, timeout=300)
        response.raise_for_status()
        body = response.json()
        return time.perf_counter() - started, body["hits"]["total"]


def run_round(base_url: str, clients: int, repeat: int) -> dict[str, list[float]]:
    """Every client asks each search `repeat` times, in turns; the latencies by search."""
    latencies: dict[str, list[float]] = {name: [] for name in SEARCHES}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work() -> None:
        client = Client(base_url)
        try:
            for _ in range(repeat):
                for name, params in SEARCHES.items():
                    seconds, _ = client.search(params)
                    with lock:
                        latencies[name].append(seconds)
        except BaseException as exc:  # noqa: BLE001 - reported after the round
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def report(title: str, latencies: dict[str, list[float]], totals: dict[str, int]) -> None:
    print(title)
    for name, values in latencies.items():
        p50 = statistics.median(values) * 1000
        print(f"  {name:8} {str(SEARCHES[name]):32} hits {totals[name]:>8}   p50 {p50:7.1f} ms"
              f"   p95 {percentile(values, 0.95) * 1000:7.1f} ms   (n={len(values)})")


def main() -> None:
    args = parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "repository.settings")
    var_dir = tempfile.mkdtemp(prefix="nbarchive-bench-search-")
    os.environ["NBARCHIVE_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_DEBUG", "1")  # migrate/seed only; the server runs with DEBUG off

    ensure_database(args.database_url, args.reseed)
    accepted, indexed = prepare(args.records, args.batch)
    if args.explain:
        explain()
        return
    if args.cache_url:
        os.environ["CACHE_URL"] = args.cache_url
    database = urlsplit(args.database_url)
    print(f"database {database.hostname}:{database.port}{database.path}: {accepted} accepted versions, "
          f"{indexed} indexed (public); gunicorn, {args.workers} sync workers; every answer counts all 7 facets")
    modes = ("uncached", "cached") if args.counts == "both" else (args.counts,)
    for mode in modes:
        os.environ["SEARCH_COUNTS_CACHE_SECONDS"] = "0" if mode == "uncached" else "600"
        log = Path(var_dir) / f"gunicorn-{mode}.log"
        process, oai_url = start_gunicorn(args.database_url, 100, args.workers, var_dir, log)
        base_url = oai_url.removesuffix("/oai") + "/api/records"
        try:
            client = Client(base_url)
            totals = {name: client.search(params)[1] for name, params in SEARCHES.items()}
            # Warm the workers, their connections (and, cached, every worker's counts)
            run_round(base_url, args.workers, 2 if mode == "cached" else 1)
            repeat = args.repeat if mode == "cached" else args.repeat_uncached
            single = run_round(base_url, 1, repeat)
            load_single = os.getloadavg()[0]
            concurrent = run_round(base_url, args.clients, repeat)
            load_concurrent = os.getloadavg()[0]
        finally:
            stop(process)
        print()
        print(f"counts {mode} (SEARCH_COUNTS_CACHE_SECONDS={os.environ['SEARCH_COUNTS_CACHE_SECONDS']}"
              f"{', CACHE_URL=' + args.cache_url if args.cache_url and mode == 'cached' else ''})")
        report(f"one client (1-min load {load_single:.1f} on {os.cpu_count()} CPUs):", single, totals)
        report(f"{args.clients} concurrent clients (1-min load {load_concurrent:.1f}):", concurrent, totals)


def explain() -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement one uncached search of each kind runs."""
    from django.db import connection
    from django.http import QueryDict
    from django.test.utils import CaptureQueriesContext, override_settings

    from repository.search import search_params_from_query, search_run

    for name, params in SEARCHES.items():
        query = QueryDict(mutable=True)
        query.update(params)
        with override_settings(SEARCH_COUNTS_CACHE_SECONDS=0), CaptureQueriesContext(connection) as captured:
            search_run(search_params_from_query(query))
        print(f"=== {name} {params}")
        with connection.cursor() as cursor:
            for statement in captured.captured_queries:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement["sql"])
                print(statement["sql"][:300])
                print("\n".join(row[0] for row in cursor.fetchall()))
                print()


if __name__ == "__main__":
    main()
