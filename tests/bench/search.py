"""Benchmark: GET /api/records (search with facets) on PostgreSQL, through a real HTTP server.

    .venv/bin/python tests/bench/search.py                     # 20,000 versions: a few minutes
    .venv/bin/python tests/bench/search.py --records 1000000   # the issue's million (seeding takes a while)
    .venv/bin/python tests/bench/search.py --reseed            # drop the bench database first

1. Database: DATABASE_URL, or else postgres://postgres@127.0.0.1:5432/nbarchive_bench_search (created when
   missing). Migrated, topped up with `manage.py seed_records` to --records accepted versions (about 1 in 50
   withdrawn, 1 in 10 a second version), indexed with `manage.py search_reindex` when the index does not hold
   every public version, and analysed. A database seeded before is reused.
2. The app runs under gunicorn (--workers sync workers, DJANGO_DEBUG=0, persistent database connections) on a
   free port of 127.0.0.1.
3. Four searches, each answered with all seven facets counted (the API always counts them):
   - word:    q=perovskites            (one topic word; 1 in 8 seeded records)
   - phrase:  q="thermal expansion"
   - creator: q=creator:Tanaka         (1 in 10 creators)
   - facet:   license=MIT              (no query: a filter alone)
   First one client (keep-alive session), --repeat requests of each in turns; then --clients concurrent
   clients (threads, a session each) doing the same. p50 and p95 per search. Figures only, no assertions.
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
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in the second round")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
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
        print(f"indexing {public} public versions", flush=True)
        started = time.monotonic()
        call_command("search_reindex", batch=5000)
        print(f"indexed in {time.monotonic() - started:.0f} s", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return Version.objects.filter(public_changed_at__isnull=False).count(), SearchDocument.objects.count()


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
    log = Path(var_dir) / "gunicorn.log"
    process, oai_url = start_gunicorn(args.database_url, 100, args.workers, var_dir, log)
    base_url = oai_url.removesuffix("/oai") + "/api/records"
    try:
        client = Client(base_url)
        totals = {name: client.search(params)[1] for name, params in SEARCHES.items()}
        run_round(base_url, 1, 3)  # warm the workers, their connections and the caches
        single = run_round(base_url, 1, args.repeat)
        concurrent = run_round(base_url, args.clients, args.repeat)
    finally:
        stop(process)

    database = urlsplit(args.database_url)
    print()
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
          + f" on {os.cpu_count()} CPUs (a shared machine inflates every figure)")
    print(f"database {database.hostname}:{database.port}{database.path}: {accepted} accepted versions, "
          f"{indexed} indexed (public); gunicorn, {args.workers} sync workers; every answer counts all 7 facets")
    report("one client:", single, totals)
    report(f"{args.clients} concurrent clients:", concurrent, totals)


if __name__ == "__main__":
    main()
