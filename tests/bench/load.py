"""Load test: mixed traffic against the production topology of the smoke test, with locust, in steps of users.

    .venv/bin/python tests/bench/load.py                                   # 100,000 versions; 10/25/50/100 users
    .venv/bin/python tests/bench/load.py --records 10000 --run-time 20     # quick
    .venv/bin/python tests/bench/load.py --reseed                          # drop the bench database first

1. Database: postgres://postgres@127.0.0.1:5432/nbarchive_bench_load (--database-url), created when missing,
   migrated and topped up to --records accepted versions with the search and OAI-PMH benches' seeding
   (tests/bench/oai.py, tests/bench/search.py: `seed_records`, OAI payloads, the search index in bulk). It is
   kept, and reused by the next run (--reseed drops it). Seeded versions have no files: --downloads of them get a
   small file each (rows here, bytes put into the object store at every start, as that lives in memory).
2. The smoke test's topology (tests/smoke/): Redis, moto S3, the DataCite fake, `check --deploy`, migrate,
   collectstatic, the web pool and the upload pool with deploy/'s gunicorn configurations, a Celery worker per
   queue and beat, each a process of its own with DJANGO_DEBUG=0, all on 127.0.0.1. The image registry is left
   out: deposits here are not submitted, so nothing is verified. A token for a depositor is made.
3. For each step of --users, a headless locust (tests/bench/locustfile.py) runs for --run-time seconds, each user
   waiting --wait seconds between requests: landing pages, /api/records/<id>, /api/records?q=<word>, OAI-PMH
   ListRecords (following resumptionTokens) and GetRecord, downloads, deposits (draft, upload, discard).
   Per step and endpoint: requests, failures, requests/s, p50/p95/p99 (locust's, ms), and the 1-min load
   average before the step (marked DISTURBED above the number of CPUs: someone else was using the machine).
   The last line names the first step where the landing page's p95 exceeds twice its value at the first step.
Everything started is stopped at the end (the supervisor's stop); exit status 1 if any request failed.
"""

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.bench import oai as oai_bench  # noqa: E402 (after the path is set)
from tests.bench import search as search_bench  # noqa: E402
from tests.smoke import backing, topology  # noqa: E402
from tests.smoke.supervisor import SmokeFailure, Supervisor  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/nbarchive_bench_load"
DEPOSITOR = "load-depositor"
DOWNLOAD_PATH = "load/results.csv"
SAMPLE_RECORDS = 5000  # record ids the users pick from at random
OAI = "{http://www.openarchives.org/OAI/2.0/}"
LANDING = "landing page"
DISTURBED_CORES = 0.25  # other processes' average use of the CPUs during a step beyond which its figures are not clean


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="accepted versions in the database")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--reseed", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--batch", type=int, default=5000, help="seed_records --batch")
    parser.add_argument("--users", default="10,25,50,100", help="the steps: concurrent users, comma-separated")
    parser.add_argument("--run-time", type=int, default=60, help="seconds per step")
    parser.add_argument("--wait", default="0.5,1.5", help="min,max seconds a user waits between requests")
    parser.add_argument("--downloads", type=int, default=20, help="published versions given a downloadable file")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs and locust's CSV files")
    return parser.parse_args()


# --- the database (in this process, with Django set up on the bench database) -------------------------------


def prepare_database(args) -> dict:
    """Seed, store OAI payloads, index, give a few versions a file; what the users need to know about it."""
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "repository.settings")
    os.environ["NBARCHIVE_VAR_DIR"] = tempfile.mkdtemp(prefix="nbarchive-bench-load-var-")
    os.environ["DJANGO_DEBUG"] = "1"  # migrate and seed only; the topology runs with DEBUG off
    oai_bench.ensure_database(args.database_url, args.reseed)
    oai_bench.prepare(args.records, args.batch)  # seeds, stores the OAI payloads
    accepted, indexed = search_bench.prepare(args.records, args.batch)  # indexes for search
    downloads = ensure_download_files(args.downloads)
    records = sample_records(SAMPLE_RECORDS)
    from django.db import connections

    connections.close_all()  # nothing of this process stays connected while the app runs
    return {"accepted": accepted, "indexed": indexed, "downloads": downloads, "records": records}


def download_content(index: int) -> bytes:
    """A small CSV, a different one for each version (1 to 32 KiB), so that each is a blob of its own."""
    rows = "".join(f"{index},{row},{row * index % 97}\n" for row in range(64 * (index % 32 + 1)))
    return ("record,row,value\n" + rows).encode()


def ensure_download_files(count: int) -> list[dict]:
    """`count` published versions with one file each: rows written once (the database is kept); the bytes are put
    into the object store by put_download_objects at every start."""
    from django.db import transaction

    from repository.models import Blob, Version, VersionFile
    from repository.storage import content_key

    with_file = list(Version.objects.filter(files__path=DOWNLOAD_PATH).order_by("pk")[:count])
    if len(with_file) < count:
        candidates = (Version.objects.filter(state=Version.State.PUBLISHED, files__isnull=True)
                      .exclude(pk__in=[v.pk for v in with_file]).order_by("pk")[:count - len(with_file)])
        with transaction.atomic():
            for version in candidates:
                content = download_content(version.pk)
                sha256 = hashlib.sha256(content).hexdigest()
                blob, _ = Blob.objects.get_or_create(sha256=sha256, defaults={
                    "md5": hashlib.md5(content).hexdigest(), "size": len(content),
                    "storage_key": content_key(sha256)})
                VersionFile.objects.create(version=version, path=DOWNLOAD_PATH, blob=blob)
                with_file.append(version)
    files = []
    for version in Version.objects.filter(pk__in=[v.pk for v in with_file]).select_related("record"):
        file = version.files.select_related("blob").get(path=DOWNLOAD_PATH)
        files.append({"url": f"/records/{version.record.public_id}/versions/{version.number}/files/{DOWNLOAD_PATH}",
                      "size": file.blob.size, "storage_key": file.blob.storage_key, "version_pk": version.pk})
    return files


def sample_records(count: int) -> list[str]:
    """Records whose every version is published (a withdrawn one's landing page is a tombstone, answered 410)."""
    from repository.models import Version

    withdrawn = set(Version.objects.exclude(state=Version.State.PUBLISHED).values_list("record_id", flat=True))
    sample = (Version.objects.filter(state=Version.State.PUBLISHED, number=1).exclude(record_id__in=withdrawn)
              .order_by("?").values_list("record__public_id", flat=True)[:count])
    return list(sample)


# --- the topology ------------------------------------------------------------------------------------------


def start_topology(supervisor: Supervisor, work: Path, database_url: str, downloads: list[dict]):
    redis = backing.start_redis(supervisor, work)
    s3_endpoint = backing.start_s3(supervisor, ROOT)
    datacite = backing.start_datacite()
    addresses = topology.new_addresses()
    env = topology.production_environment(work=work, addresses=addresses, database_url=database_url, redis=redis,
                                          s3_endpoint=s3_endpoint, datacite=datacite, registry_host="")
    put_download_objects(s3_endpoint, downloads)
    topology.release(supervisor, env=env, root=ROOT)
    token = create_depositor_token(supervisor, env)
    topology.start_app(supervisor, env=env, root=ROOT, addresses=addresses, work=work)
    return addresses, token, datacite


def put_download_objects(endpoint: str, downloads: list[dict]) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, **backing.S3_KEYS)
    for file in downloads:
        client.put_object(Bucket=backing.FILES_BUCKET, Key=file["storage_key"],
                          Body=download_content(file["version_pk"]))


def create_depositor_token(supervisor: Supervisor, env: dict[str, str]) -> str:
    script = (
        "from django.contrib.auth.models import User\n"
        "from repository.services.tokens import token_create\n"
        f"user, _ = User.objects.get_or_create(username={DEPOSITOR!r}, defaults={{'email': 'load@example.org'}})\n"
        "print(token_create(user=user, name='load test')[1])\n"
    )
    return supervisor.run("users", topology.manage("shell", "--no-imports", "-c", script), env=env,
                          cwd=ROOT).strip().splitlines()[-1]


def oai_identifiers(web: str) -> list[str]:
    """The identifiers of the first ListIdentifiers page that are not deleted (what GetRecord asks for)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    body = session.get(f"{web}/oai", params={"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"},
                       timeout=60).content
    headers = ElementTree.fromstring(body).iter(f"{OAI}header")
    return [h.findtext(f"{OAI}identifier") for h in headers if h.get("status") != "deleted"]


def warm_up(web: str, config: dict) -> None:
    """A few requests of each kind on new connections, so that each web worker has imported its views and opened
    its database connection before the first step is timed."""
    import requests

    paths = [f"/records/{record_id}/" for record_id in config["records"][:8]]
    paths += [f"/api/records/{record_id}" for record_id in config["records"][8:16]]
    paths += ["/api/records?q=copper", "/oai?verb=ListRecords&metadataPrefix=oai_dc", config["downloads"][0]["url"]]
    for path in paths * 2:
        with requests.Session() as session:  # a new connection each time: the next may reach another worker
            session.trust_env = False
            session.get(web + path, timeout=60).raise_for_status()


# --- the steps ---------------------------------------------------------------------------------------------


def run_step(users: int, args, config_path: Path, web: str, csv_dir: Path) -> list[dict]:
    prefix = csv_dir / f"users{users}"
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "tests" / "bench" / "locustfile.py"), "--headless",
               "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{args.run_time}s",
               "--host", web, "--csv", str(prefix), "--only-summary", "--stop-timeout", "10",
               "--loglevel", "WARNING"]
    env = {**os.environ, "LOAD_CONFIG": str(config_path), "LOAD_WAIT": args.wait}
    log = csv_dir / f"locust-users{users}.log"
    with log.open("wb") as output:
        subprocess.run(command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, check=False,
                       timeout=args.run_time + 120)
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def print_failures(users: int, csv_dir: Path) -> None:
    failures_csv = csv_dir / f"users{users}_failures.csv"
    if failures_csv.exists():
        with failures_csv.open(newline="") as handle:
            for row in csv.DictReader(handle):
                print(f"    failed x{row['Occurrences']}: {row['Method']} {row['Name']}: {row['Error'][:300]}")


def print_step(users: int, load: float, cores_busy: float, cores_others: float, rows: list[dict]) -> None:
    """The step's figures. The load average before it mostly shows the bench's own previous step; what tells
    whether someone else took CPU is the busy time of the machine that the bench's processes did not use."""
    disturbed = "  DISTURBED" if cores_others > DISTURBED_CORES else ""
    print(f"\n{users} users: 1-min load before {load:.2f}; during the step {cores_busy:.2f} of {os.cpu_count()} "
          f"cores busy, {cores_others:.2f} by other processes{disturbed}")
    print(f"  {'endpoint':28} {'requests':>8} {'fails':>6} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    for row in rows:
        name = row["Name"] if row["Type"] else "ALL"
        print(f"  {name:28} {row['Request Count']:>8} {row['Failure Count']:>6} {float(row['Requests/s']):7.1f} "
              f"{row['50%']:>7} {row['95%']:>7} {row['99%']:>7}", flush=True)


def landing_p95(rows: list[dict]) -> float | None:
    for row in rows:
        if row["Name"] == LANDING and row["95%"] not in ("", "N/A"):
            return float(row["95%"])
    return None


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def bench_cpu_seconds(supervisor: Supervisor, database: str) -> float:
    """CPU seconds of what this bench runs: itself and its reaped children (locust), every process of the
    supervisor's groups (gunicorn and Celery with their workers, Redis, moto), and the PostgreSQL backends
    connected to the bench database. Processes that ended meanwhile (a recycled upload worker) are missed."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    groups = {started.process.pid for started in supervisor.started.values()}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            ours = int(fields[2]) in groups
            if not ours:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    title = handle.read()  # a backend's: `postgres: 15/main: <user> <database> <client> <state>`
                ours = title.startswith(b"postgres: ") and f" {database} ".encode() in title
        except (OSError, ValueError, IndexError):
            continue
        if ours:
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def errors_logged(supervisor: Supervisor) -> list[str]:
    found = []
    for name in ("web", "uploads", *(f"worker-{queue}" for queue in topology.QUEUES)):
        for line in supervisor.log_text(name).splitlines():
            if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or line.startswith("Traceback"):
                found.append(f"{name}: {line[:300]}")
    return found


def main() -> int:
    args = parse_args()
    steps = [int(x) for x in args.users.split(",")]
    started = time.monotonic()
    print(f"1-min load at the start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    facts = prepare_database(args)
    print(f"database {urlsplit(args.database_url).path.lstrip('/')}: {facts['accepted']} accepted versions, "
          f"{facts['indexed']} indexed; {len(facts['downloads'])} with a downloadable file; prepared in "
          f"{time.monotonic() - started:.0f} s", flush=True)

    work = Path(tempfile.mkdtemp(prefix="nbarchive-load-"))
    supervisor = Supervisor(work / "logs")
    datacite = None
    results: dict[int, list[dict]] = {}
    failed = True
    try:
        addresses, token, datacite = start_topology(supervisor, work, args.database_url, facts["downloads"])
        config = {"records": facts["records"], "downloads": facts["downloads"], "token": token,
                  "uploads_url": addresses.uploads, "oai_identifiers": oai_identifiers(addresses.web)}
        config_path = work / "load-config.json"
        config_path.write_text(json.dumps(config))
        warm_up(addresses.web, config)
        print(f"topology up in {time.monotonic() - started:.0f} s since the start: web {addresses.web} "
              f"(deploy/gunicorn.conf.py), uploads {addresses.uploads}; locust: {args.run_time} s per step, "
              f"wait {args.wait} s", flush=True)
        database = urlsplit(args.database_url).path.lstrip("/")
        for users in steps:
            load = os.getloadavg()[0]
            machine, ours, began = machine_busy_seconds(), bench_cpu_seconds(supervisor, database), time.monotonic()
            results[users] = run_step(users, args, config_path, addresses.web, work / "logs")
            seconds = time.monotonic() - began
            cores_busy = (machine_busy_seconds() - machine) / seconds
            cores_others = max(0.0, cores_busy - (bench_cpu_seconds(supervisor, database) - ours) / seconds)
            print_step(users, load, cores_busy, cores_others, results[users])
            print_failures(users, work / "logs")
            supervisor.ensure_running()
        failed = False
    except SmokeFailure as exc:
        print(f"LOAD FAILED: {exc.reason}")
        if exc.log:
            print(f"--- last lines of {exc.log}.log ---\n{supervisor.tail(exc.log)}")
    finally:
        logged = errors_logged(supervisor)
        supervisor.stop_all()
        if datacite is not None:
            datacite.stop()
    for line in logged[:10]:
        print(f"logged: {line}")
    total_failures = sum(int(row["Failure Count"]) for rows in results.values() for row in rows if not row["Type"])
    summarise(steps, results)
    print(f"failures: {total_failures}; errors logged by the app: {len(logged)}; "
          f"total {time.monotonic() - started:.0f} s")
    if failed or total_failures or logged or args.keep_logs:
        for part in work.iterdir():  # static files, Redis's folder, the spools: only the logs are kept
            if part.name != "logs":
                shutil.rmtree(part, ignore_errors=True) if part.is_dir() else part.unlink()
        print(f"(logs kept in {work / 'logs'})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed or total_failures else 0


def summarise(steps: list[int], results: dict[int, list[dict]]) -> None:
    measured = [users for users in steps if users in results and landing_p95(results[users]) is not None]
    if len(measured) < 2:
        print("one step with landing pages measured: no rise to look for")
        return
    base_users = measured[0]
    base = landing_p95(results[base_users])
    for users in measured[1:]:
        if landing_p95(results[users]) > 2 * base:
            print(f"latency rises at {users} users: landing page p95 {landing_p95(results[users]):.0f} ms, more "
                  f"than twice {base:.0f} ms at {base_users} users")
            return
    print(f"latency does not rise: landing page p95 stays within twice {base:.0f} ms ({base_users} users) up to "
          f"{measured[-1]} users")


if __name__ == "__main__":
    sys.exit(main())
