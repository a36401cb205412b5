"""python -m tests.smoke.run (`make smoke`): start the production topology, drive the whole flow over HTTP, stop
everything it started. Prints `SMOKE OK` with the time of each step, or `SMOKE FAILED at step <name>: <reason>`
with the end of the log that explains it, and exits 1. Ctrl-C and SIGTERM stop everything too."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.smoke import backing, flow, topology
from tests.smoke.supervisor import STOP_SECONDS, SmokeFailure, Supervisor

ROOT = Path(__file__).resolve().parents[2]
VERIFICATION_TIMEOUT = 180  # a cold image pull and unpack, then two cells
DOI_TIMEOUT = 60


class Interrupted(Exception):
    pass


class Smoke:
    def __init__(self, work: Path):
        self.work = work
        self.supervisor = Supervisor(work / "logs")
        self.timings: list[tuple[str, float]] = []
        self.step_name = "start"
        # The app's, and the empty one the restore check rebuilds from the backup alone.
        self.database = f"nbarchive_smoke_{os.getpid()}"
        self.restored_database = f"{self.database}_restored"
        self.databases = [self.database, self.restored_database]
        self.datacite = None

    @contextmanager
    def step(self, name: str):
        self.step_name = name
        began = time.monotonic()
        yield
        self.timings.append((name, time.monotonic() - began))

    def run(self) -> None:
        sup, root = self.supervisor, ROOT
        with self.step("backing services"):
            database_url = backing.create_database(self.database)
            redis = backing.start_redis(sup, self.work)
            s3_endpoint = backing.start_s3(sup, root)
            self.datacite = backing.start_datacite()
            registry_host, image_ref = backing.start_registry(sup, self.work)
        addresses = topology.new_addresses()
        env = topology.production_environment(
            work=self.work, addresses=addresses, database_url=database_url, redis=redis,
            s3_endpoint=s3_endpoint, datacite=self.datacite, registry_host=registry_host)
        with self.step("release (check --deploy, migrate, collectstatic)"):
            topology.release(sup, env=env, root=root)
            backing.copy_database(self.database, self.restored_database)  # migrated, still empty
        with self.step("users and tokens"):
            tokens = topology.create_users(sup, env=env, root=root)
        with self.step("start web, upload pool, workers, beat"):
            topology.start_app(sup, env=env, root=root, addresses=addresses, work=self.work)
        site = flow.Site(addresses.web, addresses.uploads, tokens)
        deposit = flow.Deposit(token=f"smoke{secrets.token_hex(6)}")
        with self.step("deposit and upload"):
            flow.deposit(site, submitter=topology.SUBMITTER, image_ref=image_ref, run=deposit)
        with self.step("submit"):
            flow.submit(site, submitter=topology.SUBMITTER, run=deposit)
        with self.step("verification in the pinned image"):
            flow.verification(site, submitter=topology.SUBMITTER, run=deposit, timeout=VERIFICATION_TIMEOUT)
        with self.step("accept"):
            flow.accept(site, moderator=topology.MODERATOR, run=deposit)
        with self.step("DOI findable at DataCite"):
            flow.doi_findable(site, datacite_url=self.datacite.url, run=deposit, timeout=DOI_TIMEOUT)
        with self.step("landing page"):
            flow.landing_page(site, run=deposit)
        with self.step("OAI-PMH"):
            flow.oai_pmh(site, run=deposit)
        with self.step("search"):
            flow.search(site, run=deposit)
        with self.step("health and metrics"):
            flow.health(site)
        with self.step("backup"):
            self._backup(env)
        with self.step("restore check"):
            self._restore_check(env, deposit=deposit)
        with self.step("all processes still running, no errors logged"):
            sup.ensure_running()
            self._no_errors_logged()

    def _backup(self, env: dict[str, str]) -> None:
        output = self.supervisor.run("backup", topology.manage("backup"), env=env, cwd=ROOT)
        if not output.startswith("Backed up 2 file(s)"):
            raise SmokeFailure(f"the backup did not write the notebook and its data: {output.strip()}", log="backup")
        verified = self.supervisor.run(
            "backup", topology.manage("restore", "--from", f"s3://{backing.BACKUP_BUCKET}", "--verify-only"),
            env=env, cwd=ROOT)
        if "2 file(s) and 1 bag(s) checked" not in verified:
            raise SmokeFailure(f"the backup's verification says: {verified.strip()}", log="backup")

    def _restore_check(self, env: dict[str, str], *, deposit: flow.Deposit) -> None:
        """The backup alone rebuilds the archive: into an empty database and an empty bucket, the published
        version comes back with its DOI and both files readable."""
        restored = {**env, "DATABASE_URL": backing.database_url(self.restored_database),
                    "S3_BUCKET": backing.RESTORE_BUCKET}
        summary = self.supervisor.run(
            "restore", topology.manage("restore", "--from", f"s3://{backing.BACKUP_BUCKET}"), env=restored, cwd=ROOT)
        if "2 file(s) written to primary storage" not in summary:
            raise SmokeFailure(f"the restore says: {summary.strip()}", log="restore")
        script = (
            "from django.core.files.storage import storages\n"
            "from repository.models import Version\n"
            f"version = Version.objects.get(record__public_id={deposit.record_id!r}, number=1)\n"
            "print(version.state, version.doi)\n"
            "for file in version.files.all():\n"
            "    with storages['blobs'].open(file.blob.storage_key) as handle:\n"
            "        print(file.path, len(handle.read()))\n"
        )
        shown = self.supervisor.run("restore", topology.manage("shell", "--no-imports", "-c", script), env=restored,
                                    cwd=ROOT)
        if not shown.startswith(f"published {deposit.doi}") or "thermal.ipynb" not in shown:
            raise SmokeFailure(f"the restored database shows: {shown.strip()}", log="restore")

    def _no_errors_logged(self) -> None:
        """A 500 the flow did not see, a task that failed and was retried into success: each is an ERROR line
        (JSON logs) or a traceback in some process's log."""
        for name in ("web", "uploads", *(f"worker-{queue}" for queue in topology.QUEUES), "beat"):
            for line in self.supervisor.log_text(name).splitlines():
                if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or line.startswith("Traceback"):
                    raise SmokeFailure(f"{name} logged: {line[:400]}", log=name)

    def stop(self) -> None:
        self.supervisor.stop_all()
        if self.datacite is not None:
            self.datacite.stop()
        try:
            backing.drop_databases(self.databases)
        except Exception as exc:  # PostgreSQL may be what failed; say so, the verdict stands
            print(f"(could not drop the smoke databases: {exc})", file=sys.stderr)


def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def main(arguments: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.smoke.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs after a success too")
    options = parser.parse_args(arguments)
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="nbarchive-smoke-", dir=_scratch_parent()))
    work.chmod(0o755)  # the sandbox uid reaches the image cache below it
    smoke = Smoke(work)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    failure: tuple[str, str, str | None] | None = None
    try:
        smoke.run()
    except SmokeFailure as exc:
        failure = (smoke.step_name, exc.reason, exc.log)
    except Interrupted as exc:
        failure = (smoke.step_name, f"interrupted by {exc}", None)
    except Exception as exc:  # a bug here or in a fake: still a verdict, and everything stopped
        failure = (smoke.step_name, f"{type(exc).__name__}: {exc}", None)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stopping short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with smoke.step("stop everything"):
            smoke.stop()
    if smoke.supervisor.killed:
        print(f"(killed after {STOP_SECONDS} s of SIGTERM: {', '.join(smoke.supervisor.killed)})")
    if failure is not None:
        step, reason, log = failure
        print(f"SMOKE FAILED at step {step}: {reason}")
        if log:
            print(f"--- last lines of {log}.log ({smoke.supervisor.log_dir}) ---\n{smoke.supervisor.tail(log)}")
        _remove_all_but_logs(work, smoke.supervisor.log_dir)  # the unpacked image, spool, registry go
        print(f"(logs kept in {smoke.supervisor.log_dir})")
        return 1
    with smoke.step("remove the work folder"):
        _remove_all_but_logs(work, smoke.supervisor.log_dir) if options.keep_logs else _remove(work)
    width = max(len(name) for name, _ in smoke.timings)
    for name, seconds in smoke.timings:
        print(f"  {name:<{width}}  {seconds:6.1f} s")
    if options.keep_logs:
        print(f"(logs kept in {smoke.supervisor.log_dir})")
    print(f"SMOKE OK in {time.monotonic() - began:.1f} s")
    return 0


def _scratch_parent() -> str | None:
    """/dev/shm when it is a memory file system that allows executing (a Docker container's does not) and has room:
    the image is unpacked, run and removed there several times faster than on a disk that discards deleted
    blocks (measured: removing the unpacked image took 36 s on such a disk). Otherwise the usual temporary folder."""
    try:
        info = os.statvfs("/dev/shm")
    except OSError:
        return None
    usable = not info.f_flag & (os.ST_NOEXEC | os.ST_RDONLY) and info.f_bavail * info.f_frsize > 2 * 1024**3
    return "/dev/shm" if usable and os.access("/dev/shm", os.W_OK) else None


def _remove_all_but_logs(work: Path, log_dir: Path) -> None:
    for part in work.iterdir():
        if part != log_dir:
            _remove(part)


def _remove(work: Path) -> None:
    from repository.runners.cleanup import remove_tree

    remove_tree(work)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
