"""The app's own processes, as deploy/ runs them: the production environment (DJANGO_DEBUG=0, a random secret key,
PostgreSQL, Redis, S3, DataCite, RUNNER=image), the release commands (migrate, collectstatic), the two gunicorn
pools with the shipped configurations, a Celery worker per queue and one beat."""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.smoke.backing import BACKUP_BUCKET, FILES_BUCKET, S3_KEYS
from tests.smoke.supervisor import Supervisor, free_port

# Every queue the app routes to (CELERY_TASK_ROUTES, and `celery` for the rest): a worker each, as in
# deploy/kubernetes/ and deploy/compose.yaml. Concurrency 1: this machine has two cores for all of it.
QUEUES = ("celery", "verification", "dois")
# The users the flow acts as; the moderator is a global one (group `moderators`), the submitter nothing special.
SUBMITTER, MODERATOR = "smoke-submitter", "smoke-moderator"


@dataclass
class Addresses:
    web_port: int
    uploads_port: int

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def uploads(self) -> str:
        return f"http://127.0.0.1:{self.uploads_port}"


def production_environment(*, work: Path, addresses: Addresses, database_url: str, redis: dict[str, str],
                           s3_endpoint: str, datacite, registry_host: str) -> dict[str, str]:
    """What deploy/env.example lists, filled in for this machine's loopback services."""
    image_cache = work / "image-cache"
    image_cache.mkdir(mode=0o755)  # the sandbox uid reads unpacked images: every folder above must be searchable
    # The backup spools S3 volumes in work/backup-spool; it makes the folder when missing, as on a new machine.
    inherited = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
    return {
        **inherited,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SITE_URL": addresses.web,
        "CSRF_TRUSTED_ORIGINS": f"{addresses.web},{addresses.uploads}",
        "NBARCHIVE_VAR_DIR": str(work / "var"),
        "STATIC_ROOT": str(work / "static"),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "WORKER_QUEUES": ",".join(QUEUES),
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics-web"),
        "UPLOADS_PROMETHEUS_MULTIPROC_DIR": str(work / "metrics-uploads"),
        "MALLOC_ARENA_MAX": "2",
        "DATABASE_URL": database_url,
        "CACHE_URL": redis["cache"],
        "CELERY_BROKER_URL": redis["broker"],
        "CELERY_RESULT_BACKEND": redis["results"],
        "S3_BUCKET": FILES_BUCKET,
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_REGION": S3_KEYS["region_name"],
        "S3_ACCESS_KEY_ID": S3_KEYS["aws_access_key_id"],
        "S3_SECRET_ACCESS_KEY": S3_KEYS["aws_secret_access_key"],
        "BACKUP_S3_BUCKET": BACKUP_BUCKET,
        # moto keeps the bucket in memory only, but a lock of years would still be the wrong example to copy.
        "BACKUP_S3_OBJECT_LOCK_MODE": "GOVERNANCE",
        "BACKUP_S3_OBJECT_LOCK_DAYS": "1",
        "BACKUP_SPOOL_DIR": str(work / "backup-spool"),
        "DOI_PROVIDER": "datacite",
        "DOI_PREFIX": datacite.prefixes[0],
        "DATACITE_API_URL": datacite.url,
        "DATACITE_USERNAME": datacite.username,
        "DATACITE_PASSWORD": datacite.password,
        "DATACITE_TEST_MODE": "0",
        # A registrar on loopback answers at once; a failed sync should be seen by the smoke, not retried for minutes.
        "DOI_SYNC_RETRY_BASE": "2",
        "RUNNER": "image",
        "IMAGE_CACHE_DIR": str(image_cache / "cache"),
        "IMAGE_INSECURE_REGISTRIES": registry_host,
        "OAI_ADMIN_EMAIL": "oai-admin@smoke.example.org",
        "EMAIL_FILE_PATH": str(work / "mail"),
    }


def manage(*arguments: str) -> list[str]:
    return [sys.executable, "manage.py", *arguments]


def release(supervisor: Supervisor, *, env: dict[str, str], root: Path) -> None:
    """What every release runs before the processes start (README's production section). The deployment checks
    and collectstatic need no database, so they run beside migrate."""
    supervisor.start("check", manage("check", "--deploy", "--fail-level", "ERROR"), env=env, cwd=root)
    supervisor.start("collectstatic", manage("collectstatic", "--no-input"), env=env, cwd=root)
    supervisor.run("migrate", manage("migrate", "--no-input"), env=env, cwd=root)
    supervisor.finish("check")
    supervisor.finish("collectstatic")


def create_users(supervisor: Supervisor, *, env: dict[str, str], root: Path) -> dict[str, str]:
    """The submitter and the moderator (a global one), and an API token for each, in one `manage.py shell`: the
    same service as `manage.py create_token`, without two more interpreter starts; {username: token}."""
    script = (
        "import json\n"
        "from django.contrib.auth.models import Group, User\n"
        "from repository.services.tokens import token_create\n"
        f"submitter = User.objects.create_user({SUBMITTER!r}, 'submitter@smoke.example.org', None)\n"
        f"moderator = User.objects.create_user({MODERATOR!r}, 'moderator@smoke.example.org', None)\n"
        "moderator.groups.add(Group.objects.get_or_create(name='moderators')[0])\n"
        "tokens = {user.username: token_create(user=user, name='smoke')[1] for user in (submitter, moderator)}\n"
        "print(json.dumps(tokens))\n"
    )
    return json.loads(supervisor.run("users", manage("shell", "--no-imports", "-c", script), env=env, cwd=root))


def start_app(supervisor: Supervisor, *, env: dict[str, str], root: Path, addresses: Addresses,
              work: Path) -> None:
    """The web and upload pools (deploy/gunicorn*.conf.py, only the address changed; the upload pool with one
    worker, as this machine has two cores), a worker per queue, one beat; returns once each answers."""
    gunicorn = [sys.executable, "-m", "gunicorn"]
    supervisor.start("web", [*gunicorn, "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{addresses.web_port}",
                             "repository.wsgi:application"], env=env, cwd=root)
    supervisor.start("uploads", [*gunicorn, "-c", "deploy/gunicorn-uploads.conf.py", "--workers", "1",
                                 "--bind", f"127.0.0.1:{addresses.uploads_port}", "repository.wsgi:application"],
                     env=env, cwd=root)
    for queue in QUEUES:
        supervisor.start(f"worker-{queue}", [
            sys.executable, "-m", "celery", "-A", "repository", "worker", "--loglevel", "INFO", "--queues", queue,
            "--concurrency", "1", "--hostname", f"{queue}@%h"], env=env, cwd=root)
    supervisor.start("beat", [sys.executable, "-m", "celery", "-A", "repository", "beat", "--loglevel", "INFO",
                              "--schedule", str(work / "celerybeat-schedule")], env=env, cwd=root)
    supervisor.wait_for_port("web", addresses.web_port)
    supervisor.wait_for_port("uploads", addresses.uploads_port)
    for queue in QUEUES:
        supervisor.wait_for_log(f"worker-{queue}", "ready.")
    supervisor.wait_for_log("beat", "beat: Starting")


def new_addresses() -> Addresses:
    web = free_port()
    uploads = free_port()
    while uploads == web:  # each was free when asked; the kernel may hand out the same one twice
        uploads = free_port()
    return Addresses(web_port=web, uploads_port=uploads)
