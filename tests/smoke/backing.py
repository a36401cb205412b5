"""What the app talks to, each on loopback: a fresh PostgreSQL database, Redis, moto's S3 server with the files
and backup buckets, the DataCite fake, and a docker-registry serving the `minimal` test image pinned by digest."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from tests.smoke.supervisor import SmokeFailure, Supervisor, free_port, port_open

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}  # trust authentication, as `make test` uses
S3_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
FILES_BUCKET = "nbarchive-files"
BACKUP_BUCKET = "nbarchive-backup"
RESTORE_BUCKET = "nbarchive-restored"  # the primary storage a restore check rebuilds from the backup alone


def create_database(name: str) -> str:
    import psycopg

    if not port_open(POSTGRES["port"]):
        raise SmokeFailure(f"PostgreSQL does not answer on {POSTGRES['host']}:{POSTGRES['port']}")
    with psycopg.connect(dbname="postgres", autocommit=True, **POSTGRES) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def database_url(name: str) -> str:
    return f"postgres://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{name}"


def copy_database(source: str, copy: str) -> None:
    """`copy` as `source` is now (nobody may be connected to it): a migrated empty database in a moment."""
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **POSTGRES) as connection:
        connection.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{source}"')


def drop_databases(names: list[str]) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **POSTGRES) as connection:
        for name in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_redis(supervisor: Supervisor, work: Path) -> dict[str, str]:
    """Redis databases for the broker, results and cache: {"broker": url, "results": url, "cache": url}.

    A Redis of our own on a free port, nothing persisted, when redis-server is installed: no other run's tasks reach
    our workers, and ours reach no one else's. Otherwise the machine's at 127.0.0.1:6379 (as the tests use it),
    databases 10-12, emptied first: two smoke runs at once would then share them."""
    if shutil.which("redis-server") is not None:
        port = free_port()
        folder = work / "redis"
        folder.mkdir()
        supervisor.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                   "--appendonly", "no", "--dir", str(folder)], env=_plain_env(), cwd=folder)
        supervisor.wait_for_port("redis", port)
        base, first = f"redis://127.0.0.1:{port}", 0
    elif port_open(6379):
        import redis

        base, first = "redis://127.0.0.1:6379", 10
        for number in range(first, first + 3):
            redis.Redis.from_url(f"{base}/{number}").flushdb()
    else:
        raise SmokeFailure("no Redis: redis-server is not installed and nothing answers on 127.0.0.1:6379")
    return {role: f"{base}/{first + offset}" for offset, role in enumerate(("broker", "results", "cache"))}


def start_s3(supervisor: Supervisor, repository_root: Path) -> str:
    """moto's server with real S3's part-checksum check (tests/fakes/moto_checksums.py); the buckets created."""
    import boto3

    port = free_port()
    supervisor.start("s3", [sys.executable, str(repository_root / "tests" / "fakes" / "moto_checksums.py"),
                            "-H", "127.0.0.1", "-p", str(port)], env={**_plain_env(), **_python_env()},
                     cwd=repository_root)
    supervisor.wait_for_port("s3", port)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, **S3_KEYS)
    client.create_bucket(Bucket=FILES_BUCKET)
    client.create_bucket(Bucket=RESTORE_BUCKET)
    # The backup tier as production has it: object lock, volumes in an archive storage class.
    client.create_bucket(Bucket=BACKUP_BUCKET, ObjectLockEnabledForBucket=True)
    return endpoint


def start_datacite():
    from tests.fakes.datacite import FakeDataCite

    return FakeDataCite().start()


def start_registry(supervisor: Supervisor, work: Path) -> tuple[str, str]:
    """docker-registry on a free port with the `minimal` test image (built once per machine) pushed to it; returns
    (host:port, the image pinned by digest)."""
    from tests.images.build import build_image
    from tests.images.build import missing_tools as missing_build_tools
    from tests.images.registry import LocalRegistry
    from tests.images.registry import missing_tools as missing_registry_tools

    missing = missing_registry_tools() + missing_build_tools() + [t for t in ("bwrap",) if not shutil.which(t)]
    if missing:
        raise SmokeFailure(f"{', '.join(missing)} not installed (Debian packages skopeo umoci docker-registry "
                           "mmdebstrap bubblewrap; .ci/run installs them)")
    layout = build_image("minimal")
    folder = work / "registry"
    folder.mkdir()
    port = free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    # Started here rather than by LocalRegistry.start, so that it is stopped with everything else.
    started = supervisor.start("registry", ["docker-registry", "serve", str(config)], env=_plain_env(), cwd=folder)
    supervisor.wait_for_port("registry", port)
    registry = LocalRegistry(folder=folder, port=port, process=started.process)
    try:
        return registry.host, registry.push(layout, "nbarchive-smoke/minimal")
    except RuntimeError as exc:
        raise SmokeFailure(str(exc), log="registry") from exc


def _plain_env() -> dict[str, str]:
    return {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}


def _python_env() -> dict[str, str]:
    return {"PYTHONUNBUFFERED": "1"}
