"""Benchmark: `backup_run` into a local backup directory against plain `tar -cf` of the same files into the same
directory, and the backup process's peak memory for small and for large files.

    .venv/bin/python tests/bench/backup.py                          # 2048 MiB per file set, all three sets
    .venv/bin/python tests/bench/backup.py --total-mb 256 --sets mixed   # quick

For each file set (--sets, default mixed,small,large; each --total-mb of random bytes):
  mixed  about 40 % of the bytes in files of 4 KiB - 1 MiB, 30 % in 1 - 32 MiB, 30 % in 64 - 512 MiB
  small  files of 16 - 512 KiB only
  large  files of 256 MiB only
it writes the files into a fresh primary storage directory (the embedded default's layout) with the database
rows of published versions (up to 100 files each, SQLite; DJANGO_DEBUG=0 as in production, so no query log), then
--repeat times, alternately:
  - backup: a child process runs `backup_run()` (the catalog and the target are emptied first, so every run
    writes everything); timed inside the child around the call, which includes hashing every file, the volume
    hash, the BagIt bags, the manifests and the fsync of each volume (the URLconf is loaded first, as the
    command's system checks do); its peak RSS is the child's ru_maxrss, printed with its RSS just before the call
    (Django and the ORM loaded);
  - tar: `tar -cf <backup dir>/plain.tar -C <primary dir> .`, timed, then the same plus an fsync of the tar file
    (the backup fsyncs its volumes before cataloguing them, so "tar+fsync" is the like-for-like baseline).
Before each timing the bench waits (--quiet-wait) for two idle seconds: the machine may be shared, and other
processes' CPU and disk use would count as ours; figures taken on a busy machine are marked DISTURBED.
The best time of each is used: ratio = tar seconds / backup seconds (target >= 0.9 for small files; higher is better).
Figures only, no assertions. Everything is written under a temporary directory that is removed at the end.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

CHILD = r"""
import json, os, resource, sys, time
import django
django.setup()
from django.urls import get_resolver
from repository.backup.services import backup_run
get_resolver().url_patterns  # loaded by `manage.py backup`'s system checks (and in a worker) before it runs
status = open("/proc/self/status").read()
before = int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1])
started = time.monotonic()
summary = backup_run(trigger="bench")
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds, "rss_before_kib": before,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "volumes": len(summary.volumes), "blobs": summary.blobs, "bytes": summary.bytes,
                  "bags": summary.bags, "failures": len(summary.failures)}))
"""


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mb", type=int, default=2048, help="MiB of files per set (default 2048)")
    parser.add_argument("--sets", default="mixed,small,large", help="comma-separated: mixed, small, large")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side (default 3; best counts)")
    parser.add_argument("--volume-mb", type=int, default=0,
                        help="BACKUP_VOLUME_MAX_BYTES in MiB (default: the setting's default, 10 GiB)")
    parser.add_argument("--quiet-wait", type=float, default=120,
                        help="seconds to wait, before each timing, for the machine to be idle (default 120)")
    parser.add_argument("--workdir", default="", help="where to put the files (default: a temporary directory)")
    return parser.parse_args()


def sizes(kind: str, total: int, rng: random.Random) -> list[int]:
    def draw(low: int, high: int, budget: int) -> list[int]:
        out = []
        while budget > 0:
            size = min(budget, rng.randint(low, high))
            out.append(size)
            budget -= size
        return out

    if kind == "small":
        return draw(16 * 1024, 512 * 1024, total)
    if kind == "large":
        return draw(256 * MiB, 256 * MiB, total)
    return (draw(4 * 1024, MiB, total * 40 // 100) + draw(MiB, 32 * MiB, total * 30 // 100)
            + draw(64 * MiB, 512 * MiB, total - total * 70 // 100))


def environment(var_dir: Path, volume_mb: int) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "repository.settings", "NBARCHIVE_VAR_DIR": str(var_dir),
           "DATABASE_URL": f"sqlite:///{var_dir / 'bench.sqlite3'}", "DJANGO_DEBUG": "0", "LOG_LEVEL": "WARNING",
           "PYTHONPATH": str(ROOT)}
    if volume_mb:
        env["BACKUP_VOLUME_MAX_BYTES"] = str(volume_mb * MiB)
    return env


def populate(var_dir: Path, kind: str, total: int, volume_mb: int) -> tuple[int, int]:
    """Write the files and the rows of published versions (in a child process: the settings differ per set)."""
    script = r"""
import hashlib, json, os, random, sys, uuid
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from django.utils import timezone
from repository.models import Blob, Record, Version, VersionFile
from repository.storage import blob_storage
with open(sys.argv[1]) as handle:
    sizes = json.load(handle)
root = blob_storage().location
user = get_user_model().objects.create(username="bench", email="bench@example.org")
now = timezone.now()
piece = 4 * 1024 * 1024
version = None
for index, size in enumerate(sizes):
    if index % 100 == 0:
        record = Record.objects.create()
        record.owners.add(user)
        version = Version.objects.create(record=record, number=1, state="published", created_by=user,
                                          title=f"Bench {index // 100}", license="CC-BY-4.0", published_at=now,
                                          public_changed_at=now)
    key = f"blobs/bench/{index % 256:02x}/{uuid.uuid4().hex}"
    path = os.path.join(root, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sha, md5, left = hashlib.sha256(), hashlib.md5(), size
    with open(path, "wb") as out:
        while left:
            data = random.randbytes(min(piece, left))
            sha.update(data); md5.update(data); out.write(data); left -= len(data)
    blob = Blob.objects.create(sha256=sha.hexdigest(), md5=md5.hexdigest(), size=size, storage_key=key)
    VersionFile.objects.create(version=version, path=f"file{index:06d}.bin", blob=blob)
"""
    rng = random.Random(f"{kind}-{total}")
    chosen = sizes(kind, total, rng)
    sizes_file = var_dir / "sizes.json"
    sizes_file.write_text(json.dumps(chosen))
    subprocess.run([sys.executable, "-c", script, str(sizes_file)], env=environment(var_dir, volume_mb), check=True,
                   cwd=ROOT)
    return len(chosen), sum(chosen)


def reset_backup(var_dir: Path, volume_mb: int) -> None:
    script = r"""
import django
django.setup()
from repository.backup.models import BackupBag, BackupCopy, BackupRun, BackupVolume
BackupCopy.objects.all().delete(); BackupBag.objects.all().delete()
BackupVolume.objects.all().delete(); BackupRun.objects.all().delete()
"""
    subprocess.run([sys.executable, "-c", script], env=environment(var_dir, volume_mb), check=True, cwd=ROOT)
    shutil.rmtree(var_dir / "backup", ignore_errors=True)
    (var_dir / "backup").mkdir()


def _cpu_busy() -> tuple[float, float]:
    with open("/proc/stat") as handle:
        fields = [float(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def wait_quiet(max_wait: float) -> bool:
    """Wait until the machine has been (nearly) idle for two seconds, at most `max_wait` seconds; whether it was.
    The machine may be shared: other processes' CPU and disk use would be measured as ours."""
    deadline = time.monotonic() + max_wait
    quiet = 0
    while True:
        busy, total = _cpu_busy()
        time.sleep(1)
        busy2, total2 = _cpu_busy()
        share = (busy2 - busy) / max(total2 - total, 1)
        quiet = quiet + 1 if share < 0.1 else 0
        if quiet >= 2:
            return True
        if time.monotonic() > deadline:
            return False


def run_backup(var_dir: Path, volume_mb: int, quiet_wait: float) -> dict:
    reset_backup(var_dir, volume_mb)
    subprocess.run(["sync"], check=True)
    quiet = wait_quiet(quiet_wait)
    done = subprocess.run([sys.executable, "-c", CHILD], env=environment(var_dir, volume_mb), check=True,
                          cwd=ROOT, capture_output=True, text=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "quiet": quiet}


def run_tar(var_dir: Path, quiet_wait: float) -> tuple[float, float, bool]:
    out = var_dir / "backup" / "plain.tar"
    subprocess.run(["sync"], check=True)
    quiet = wait_quiet(quiet_wait)
    started = time.monotonic()
    subprocess.run(["tar", "-cf", str(out), "-C", str(var_dir / "blobs"), "."], check=True)
    plain = time.monotonic() - started
    fd = os.open(out, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    synced = time.monotonic() - started
    out.unlink()
    return plain, synced, quiet


def read_all(directory: Path) -> None:
    """Read every file once, so that both sides start from the page cache."""
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                while handle.read(8 * MiB):
                    pass


def bench_set(base: Path, kind: str, args) -> dict:
    var_dir = base / kind
    var_dir.mkdir()
    count, total = populate(var_dir, kind, args.total_mb * MiB, args.volume_mb)
    read_all(var_dir / "blobs")
    backups, tars = [], []
    for _ in range(args.repeat):
        backups.append(run_backup(var_dir, args.volume_mb, args.quiet_wait))
        tars.append(run_tar(var_dir, args.quiet_wait))
    shutil.rmtree(var_dir)
    best = min(backups, key=lambda r: r["seconds"])
    tar_plain = min(t[0] for t in tars)
    tar_synced = min(t[1] for t in tars)
    print(f"[{kind}] every run: backup " + ", ".join(f"{b['seconds']:.2f}" + ("" if b["quiet"] else "*")
                                                  for b in backups)
          + " s; tar+fsync " + ", ".join(f"{t[1]:.2f}" + ("" if t[2] else "*") for t in tars)
          + " s (* the machine was busy before it)", flush=True)
    disturbed = not all(b["quiet"] for b in backups) or not all(t[2] for t in tars)
    return {"set": kind, "files": count, "bytes": total, "backup": best, "all_backups": backups,
            "tar_plain": tar_plain, "tar_synced": tar_synced, "disturbed": disturbed}


def main() -> None:
    args = parse_args()
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="nbarchive-bench-backup-"))
    base.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for kind in [s.strip() for s in args.sets.split(",") if s.strip()]:
            print(f"[{kind}] writing {args.total_mb} MiB of files and their rows ...", flush=True)
            results.append(bench_set(base, kind, args))
            r = results[-1]
            b = r["backup"]
            print(f"[{kind}] {r['files']} files, {r['bytes'] / MiB:.0f} MiB: backup {b['seconds']:.2f} s "
                  f"({r['bytes'] / MiB / b['seconds']:.0f} MiB/s, {b['volumes']} volume(s), {b['bags']} bags); "
                  f"tar {r['tar_plain']:.2f} s, tar+fsync {r['tar_synced']:.2f} s", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)

    print()
    print(f"{'set':<7} {'files':>6} {'MiB':>6} {'backup s':>9} {'MiB/s':>6} {'tar s':>7} {'tar+fsync s':>11} "
          f"{'ratio':>6} {'ratio (no fsync)':>16} {'RSS before':>11} {'peak RSS':>9}")
    for r in results:
        b = r["backup"]
        print(f"{r['set']:<7} {r['files']:>6} {r['bytes'] / MiB:>6.0f} {b['seconds']:>9.2f} "
              f"{r['bytes'] / MiB / b['seconds']:>6.0f} {r['tar_plain']:>7.2f} {r['tar_synced']:>11.2f} "
              f"{r['tar_synced'] / b['seconds']:>6.2f} {r['tar_plain'] / b['seconds']:>16.2f} "
              f"{b['rss_before_kib'] / 1024:>8.0f} MiB {b['peak_kib'] / 1024:>5.0f} MiB"
              + ("  DISTURBED" if r["disturbed"] else ""))
    print("\nratio = tar+fsync seconds / backup seconds (target >= 0.9); peak RSS = the backup child's ru_maxrss")
    print("(should not depend on the file sizes: compare small and large).")


if __name__ == "__main__":
    main()
