"""Benchmark: OAI-PMH ListRecords (oai_dc, oai_datacite) over a million records on PostgreSQL, through HTTP.

    .venv/bin/python tests/bench/oai.py                       # 1,000,000 records, as the issue asks
    .venv/bin/python tests/bench/oai.py --records 50000       # quick
    .venv/bin/python tests/bench/oai.py --reseed              # drop the bench database first
    git archive main | tar -x -C /tmp/base && .venv/bin/python tests/bench/oai.py --baseline /tmp/base
                                                              # the code before, measured first in the same run
    .venv/bin/python tests/bench/oai.py --accept-encoding gzip  # compressed responses
    .venv/bin/python tests/bench/oai.py --harvest-limit 100000  # stop each harvest early (a slow baseline)

1. Database: DATABASE_URL, or else postgres://postgres@127.0.0.1:5432/nbarchive_bench_oai (created when missing).
   It is migrated; `manage.py seed_records` writes --seed-real versions (20,000 by default) and
   `manage.py oai_fragments_rebuild` stores their OAI payloads, as on an upgraded installation; then those rows
   are copied in SQL (records, versions, creators, reviews, payloads, with new ids, public ids and DOIs, and
   datestamps moved earlier by whole spans) until the database holds --records accepted versions, rewritten in
   datestamp order (as the application writes them) and analysed.
   Building the payloads through the exports runs at about 300 versions/s here, so a million built that way
   would take an hour; the copies take a few minutes. A database seeded before is reused.
2. The app runs under gunicorn (--workers sync workers, one by default, DJANGO_DEBUG=0, persistent database
   connections as in production: `conn_max_age` in the URL) on a free port of 127.0.0.1.
3. One client (requests, a keep-alive session, Accept-Encoding as given) parses every response with lxml, as a
   harvester would, and the bench prints, for each of --prefixes in turn, with the load average:
   - a full harvest: pages, records, seconds, records per second (target >= 10,000/s), bytes per record on the
     wire, page latencies;
   - the first ListRecords page (it also estimates completeListSize), the second page, and a page deep
     in the list: the token of the page at 99% of the harvest, asked again (tokens are stateless, so the same
     page is answered again). They are timed in turns, --repeat times each; medians, and deep/first (target:
     within 10%) and deep/second (the same work without the estimate).
Figures only, no assertions. Everything the bench starts is stopped at the end; the database is kept.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/nbarchive_bench_oai"
HOST = "127.0.0.1"
OAI = "{http://www.openarchives.org/OAI/2.0/}"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="accepted versions in the database")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--reseed", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--batch", type=int, default=5000, help="seed_records --batch")
    parser.add_argument("--seed-real", type=int, default=20_000,
                        help="versions written by seed_records and oai_fragments_rebuild; the rest are copies")
    parser.add_argument("--page-size", type=int, default=1000, help="OAI_PAGE_SIZE")
    parser.add_argument("--repeat", type=int, default=15, help="timings of the first, second and deep page")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn sync workers")
    parser.add_argument("--prefixes", default="oai_dc,oai_datacite", help="metadata formats harvested, in turn")
    parser.add_argument("--harvest-limit", type=int, default=None,
                        help="stop each full harvest after this many records (e.g. for a slow baseline)")
    parser.add_argument("--accept-encoding", default="identity",
                        help="what the client accepts (`gzip`: compressed responses, if the server sends them)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a checkout of the code to compare with (e.g. `git archive main`), measured in the "
                             "same run against the same database, before this checkout")
    return parser.parse_args()


# --- the database ------------------------------------------------------------------------------------------


def ensure_database(url: str, reseed: bool) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres", query=""))
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reseed:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def prepare(records: int, batch: int, seed_real: int) -> int:
    """Migrate, seed up to `records`, analyse; returns how many items the database holds."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from harvest.models import OaiFragment
    from repository.models import Version

    call_command("migrate", verbosity=0)
    existing = Version.objects.filter(public_changed_at__isnull=False).count()
    if existing >= records:
        print(f"reusing the {existing} versions already seeded")
        return existing
    real = min(records, seed_real)
    if existing < real:
        print(f"seeding {real - existing} versions ({existing} already there)", flush=True)
        started = time.monotonic()
        call_command("seed_records", str(real - existing), batch=batch, random_seed=1)
        print(f"seeded in {time.monotonic() - started:.0f} s", flush=True)
        existing = real
    if OaiFragment.objects.count() < existing:
        # seed_records writes rows directly, as a restore would: the stored OAI payloads are written as an
        # upgraded installation writes them.
        started = time.monotonic()
        call_command("oai_fragments_rebuild")
        print(f"OAI payloads stored in {time.monotonic() - started:.0f} s", flush=True)
    if existing < records:
        started = time.monotonic()
        copies = -(-(records - existing) // existing)
        with connection.cursor() as cursor:
            copy_seeded(cursor, copies)
            in_datestamp_order(cursor)
        print(f"copied the {existing} seeded versions {copies} times in {time.monotonic() - started:.0f} s",
              flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return Version.objects.filter(public_changed_at__isnull=False).count()


def in_datestamp_order(cursor) -> None:
    """Rewrite the versions in datestamp order (CLUSTER), as an installation holds them: the application writes a
    version's row whenever its datestamp moves, so on disk they follow the datestamps, while the copies above are
    written in whatever order the joins produced. (The payloads are copied in that order already: CLUSTER would
    store one row of about 3.4 kB per 8 kB page, where inserts store two.)"""
    for table, columns in (("repository_version", "public_changed_at, id"),):
        cursor.execute(f"CREATE INDEX bench_in_datestamp_order ON {table} ({columns})")
        cursor.execute(f"CLUSTER {table} USING bench_in_datestamp_order")
        cursor.execute("DROP INDEX bench_in_datestamp_order")


def copy_seeded(cursor, copies: int) -> None:
    """Copy every record `copies` times in SQL, with everything harvesters see: its versions, their creators,
    reviews (sets) and stored payloads. Copy k gets new ids, a public id of its own (`z` and nine hex digits of
    its id, which the random base-36 ids of seed_records practically never are), the DOIs and payloads rewritten
    with it, and every timestamp moved k spans of the seeded datestamps earlier, so that lists interleave no
    copies and every payload still matches its version's datestamp."""
    statements = [
        """CREATE TEMP TABLE copy_span ON COMMIT DROP AS
           SELECT max(public_changed_at) - min(public_changed_at) + interval '1 minute' AS span
           FROM repository_version WHERE public_changed_at IS NOT NULL""",
        """CREATE TEMP TABLE record_copy ON COMMIT DROP AS
           SELECT r.id AS old_id, k, nextval(pg_get_serial_sequence('repository_record', 'id')) AS new_id,
                  r.public_id AS old_public_id, k * s.span AS shift
           FROM repository_record r CROSS JOIN generate_series(1, %s) AS k CROSS JOIN copy_span s""",
        """ALTER TABLE record_copy ADD COLUMN new_public_id varchar""",
        """UPDATE record_copy SET new_public_id = 'z' || substr(lpad(to_hex(new_id), 9, '0'), 1, 4) || '-'
                                                 || substr(lpad(to_hex(new_id), 9, '0'), 5, 5)""",
        """INSERT INTO repository_record (id, public_id, concept_doi, created, updated)
           SELECT c.new_id, c.new_public_id, replace(r.concept_doi, c.old_public_id, c.new_public_id),
                  r.created - c.shift, r.updated - c.shift
           FROM record_copy c JOIN repository_record r ON r.id = c.old_id""",
        """INSERT INTO repository_record_owners (record_id, user_id)
           SELECT c.new_id, o.user_id FROM record_copy c JOIN repository_record_owners o ON o.record_id = c.old_id""",
        """CREATE TEMP TABLE version_copy ON COMMIT DROP AS
           SELECT v.id AS old_id, c.k, nextval(pg_get_serial_sequence('repository_version', 'id')) AS new_id,
                  c.new_id AS new_record_id, c.old_public_id, c.new_public_id, c.shift
           FROM repository_version v JOIN record_copy c ON c.old_id = v.record_id""",
        """INSERT INTO repository_version (
               id, number, state, doi, title, description, resource_type, version_label, license, keywords, funding,
               container_image, notebook_path, created, updated, submitted_at, published_at, created_by_id,
               record_id, comparison_tolerance, withdrawal_reason, withdrawn_at, public_changed_at, access_files,
               embargo_reason, embargo_until)
           SELECT c.new_id, v.number, v.state, replace(v.doi, c.old_public_id, c.new_public_id), v.title,
                  v.description, v.resource_type, v.version_label, v.license, v.keywords, v.funding,
                  v.container_image, v.notebook_path, v.created - c.shift, v.updated - c.shift,
                  v.submitted_at - c.shift, v.published_at - c.shift, v.created_by_id, c.new_record_id,
                  v.comparison_tolerance, v.withdrawal_reason, v.withdrawn_at - c.shift,
                  v.public_changed_at - c.shift, v.access_files, v.embargo_reason, v.embargo_until
           FROM version_copy c JOIN repository_version v ON v.id = c.old_id""",
        """INSERT INTO repository_creator (position, name, given_name, family_name, orcid, affiliation,
                                           affiliation_ror, version_id)
           SELECT p.position, p.name, p.given_name, p.family_name, p.orcid, p.affiliation, p.affiliation_ror,
                  c.new_id
           FROM version_copy c JOIN repository_creator p ON p.version_id = c.old_id""",
        """INSERT INTO moderation_reviewrequest (state, checklist, created, updated, closed_at, community_id,
                                                 submitted_by_id, version_id)
           SELECT r.state, r.checklist, r.created - c.shift, r.updated - c.shift, r.closed_at - c.shift,
                  r.community_id, r.submitted_by_id, c.new_id
           FROM version_copy c JOIN moderation_reviewrequest r ON r.version_id = c.old_id""",
        """INSERT INTO harvest_oaifragment (version_id, datestamp, oai_dc, oai_datacite)
           SELECT c.new_id, f.datestamp - c.shift, replace(f.oai_dc, c.old_public_id, c.new_public_id),
                  replace(f.oai_datacite, c.old_public_id, c.new_public_id)
           FROM version_copy c JOIN harvest_oaifragment f ON f.version_id = c.old_id
           ORDER BY f.datestamp - c.shift""",
    ]
    from django.db import transaction

    with transaction.atomic():
        for statement in statements:
            cursor.execute(statement, [copies] if "%s" in statement else None)


# --- the server --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_gunicorn(database_url: str, page_size: int, workers: int, var_dir: str, log: Path, code: Path = ROOT):
    port = free_port()
    separator = "&" if "?" in database_url else "?"
    env = {**os.environ, "DATABASE_URL": f"{database_url}{separator}conn_max_age=600", "DJANGO_DEBUG": "0",
           "SECRET_KEY": os.urandom(32).hex(), "ALLOWED_HOSTS": HOST, "NBARCHIVE_VAR_DIR": var_dir,
           "OAI_PAGE_SIZE": str(page_size), "SITE_URL": "https://archive.example.org", "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "repository.wsgi:application", "--bind", f"{HOST}:{port}",
         "--workers", str(workers), "--worker-class", "sync", "--timeout", "120"],
        cwd=code, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not port_open(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"gunicorn did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return process, f"http://{HOST}:{port}/oai"


def stop(process) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# --- the client --------------------------------------------------------------------------------------------


class Harvester:
    def __init__(self, base_url: str, accept_encoding: str):
        import requests

        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Accept-Encoding"] = accept_encoding
        self.received = 0  # bytes on the wire

    def page(self, **arguments) -> tuple[float, int, str | None, str]:
        """(seconds, records, next token or None, cursor) of one ListRecords response."""
        from lxml import etree

        started = time.perf_counter()
        response = self.session.get(self.base_url, params={"verb": "ListRecords", **arguments}, timeout=120)
        response.raise_for_status()
        self.received += int(response.headers.get("Content-Length", len(response.content)))
        root = etree.fromstring(response.content)
        elapsed = time.perf_counter() - started
        error = root.find(f"{OAI}error")
        if error is not None:
            raise RuntimeError(f"OAI-PMH error {error.get('code')}: {error.text}")
        records = len(root.findall(f"{OAI}ListRecords/{OAI}record"))
        token = root.find(f"{OAI}ListRecords/{OAI}resumptionToken")
        next_token = token.text if token is not None and token.text else None
        return elapsed, records, next_token, token.get("cursor") if token is not None else "-"


def timed(harvester: Harvester, repeat: int, **arguments) -> list[float]:
    return [harvester.page(**arguments)[0] for _ in range(repeat)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 1)[0] if Path("/proc/loadavg").exists() else "?"


def measure(args, items: int, var_dir: str, code: Path) -> None:
    log = Path(var_dir) / f"gunicorn-{code.name}.log"
    process, base_url = start_gunicorn(args.database_url, args.page_size, args.workers, var_dir, log, code)
    try:
        for prefix in args.prefixes.split(","):
            measure_format(args, items, code, Harvester(base_url, args.accept_encoding), prefix)
    finally:
        stop(process)


def measure_format(args, items: int, code: Path, harvester: Harvester, prefix: str) -> None:
    timed(harvester, 3, metadataPrefix=prefix)  # warm the worker and its database connection
    load_before = load()
    limit = args.harvest_limit or items
    print(f"{prefix}: full harvest of {min(items, limit)} items, {args.page_size} per page, code in {code} ...",
          flush=True)
    tokens, latencies, harvested = [], [], 0
    harvester.received = 0
    started = time.perf_counter()
    elapsed, records, token, _ = harvester.page(metadataPrefix=prefix)
    latencies.append(elapsed)
    harvested += records
    while token and harvested < limit:
        tokens.append(token)
        elapsed, records, token, _ = harvester.page(resumptionToken=token)
        latencies.append(elapsed)
        harvested += records
    harvest_seconds = time.perf_counter() - started
    received = harvester.received
    load_after = load()

    if len(tokens) < 2:
        raise SystemExit("The list fits in one page; seed more records or lower --page-size.")
    # First, second and deep page in turns, so that whatever else the machine does slows them alike.
    deep_token = tokens[int(len(tokens) * 0.99)]
    first, second, deep = [], [], []
    for turn in range(args.repeat + 1):
        timings = (harvester.page(metadataPrefix=prefix)[0], harvester.page(resumptionToken=tokens[0])[0],
                   harvester.page(resumptionToken=deep_token)[0])
        if turn:  # the first turn warms the pages
            for kept, seconds in zip((first, second, deep), timings, strict=True):
                kept.append(seconds)
    deep_cursor = harvester.page(resumptionToken=deep_token)[3]

    first_ms, second_ms, deep_ms = (statistics.median(x) for x in (first, second, deep))
    latencies.sort()
    print()
    database = urlsplit(args.database_url)
    print(f"code {code}; {prefix}; load average {load_before} before the harvest, {load_after} after, "
          f"{load()} at the end")
    print(f"database {database.hostname}:{database.port}{database.path}, {items} items (accepted versions); "
          f"page size {args.page_size}; gunicorn, {args.workers} sync worker(s); one client, "
          f"Accept-Encoding: {args.accept_encoding}")
    print(f"first ListRecords page ({prefix}, counts the list): median {ms(first_ms)} "
          f"(min {ms(min(first))}, max {ms(max(first))}, n={len(first)})")
    print(f"second page (resumed at cursor {args.page_size}):         median {ms(second_ms)}")
    print(f"deep page (resumed at cursor {deep_cursor}):      median {ms(deep_ms)} "
          f"(min {ms(min(deep))}, max {ms(max(deep))}, n={len(deep)})")
    print(f"deep / first: {deep_ms / first_ms:.2f} (target within 10%); deep / second: {deep_ms / second_ms:.2f}")
    print(f"full harvest: {harvested} records in {len(latencies)} pages, {harvest_seconds:.1f} s, "
          f"{harvested / harvest_seconds:,.0f} records/s (target >= 10000), {received / harvested:,.0f} bytes "
          f"per record on the wire; page latency p50 {ms(latencies[len(latencies) // 2])}, "
          f"p95 {ms(latencies[int(len(latencies) * 0.95)])}, max {ms(latencies[-1])}", flush=True)


def main() -> None:
    args = parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "repository.settings")
    var_dir = tempfile.mkdtemp(prefix="nbarchive-bench-oai-")
    os.environ["NBARCHIVE_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_DEBUG", "1")  # migrate/seed only; the server runs with DEBUG off

    ensure_database(args.database_url, args.reseed)
    items = prepare(args.records, args.batch, args.seed_real)
    for code in ([args.baseline.resolve()] if args.baseline else []) + [ROOT]:
        measure(args, items, var_dir, code)


if __name__ == "__main__":
    main()
