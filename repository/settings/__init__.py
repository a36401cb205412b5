"""The settings of nbarchive: this module, and one module per subsystem beside it (imported at the end).

Every component is one environment variable away from its production form; unset, each falls back to an
embedded default that needs no server (SQLite file, local directories, a filesystem Celery broker, the local
DOI registrar and the local sandbox runner). `deploy/env.example` lists every variable and `repository/checks.py`
refuses a production configuration that kept a development default.
"""

from pathlib import Path

from ._env import BASE_DIR, VAR_DIR, env, site_url_for_address
from .secret_key import secret_key_kept_in

# Unset: a random key generated on the first start and kept in VAR_DIR/secret_key (never a constant, which
# anyone could sign with). SECRET_KEY_GIVEN tells the production checks whether it was set.
SECRET_KEY_GIVEN = bool(env.str("SECRET_KEY", default=""))
SECRET_KEY = env.str("SECRET_KEY") if SECRET_KEY_GIVEN else secret_key_kept_in(VAR_DIR)
DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Where `manage.py serve` (and so `make run ADDRESS=...`) listens. Every absolute link (DOIs, the local resolver's
# targets, OAI-PMH baseURL, Signposting, e-mails) is built on SITE_URL, which follows this address unless set.
SERVE_ADDRESS = env.str("NBARCHIVE_ADDRESS", default="127.0.0.1:8000")
SITE_URL = env.str("SITE_URL", default=site_url_for_address(SERVE_ADDRESS)).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.orcid",
    "repository.apps.RepositoryConfig",
    "repository.backup.apps.BackupConfig",
    "repository.gitlab.apps.GitLabConfig",
    "repository.access.apps.AccessConfig",
    "moderation.apps.ModerationConfig",
    "harvest.apps.HarvestConfig",
]

MIDDLEWARE = [
    # The request id first, so that every later line logged for the request carries it; then the latency of the
    # whole request; then /health/* and /metrics, before host checks and redirects (see the module).
    "repository.observability.logs.RequestIdMiddleware",
    "repository.observability.metrics.MetricsMiddleware",
    "repository.observability.middleware.OperationsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # settings/security.py
    "repository.web.security_headers.PermissionsPolicyMiddleware",
    # A database outage in a view: 503 with Retry-After (problem+json, plain text for OAI-PMH, HTML).
    "repository.web.errors.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "repository.urls"
WSGI_APPLICATION = "repository.wsgi.application"
SITE_ID = 1

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [BASE_DIR / "templates"], "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "django.contrib.auth.context_processors.auth",
                                       "django.contrib.messages.context_processors.messages"]},
}]

# --- Database -----------------------------------------------------------------------------------------
# SQLite, which the web server and the Celery worker share, under concurrent writes: WAL lets readers go on while
# one connection writes, and IMMEDIATE transactions take the write lock when they begin, so a transaction that
# read first waits (up to the busy timeout) instead of failing at once with "database is locked" when it writes.
SQLITE_OPTIONS = {
    "timeout": env.float("SQLITE_BUSY_TIMEOUT", default=20.0),
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL",  # synchronous stays FULL: a commit survives a power cut
}
# Seconds a client is told to wait (Retry-After of the 503) when the database refuses or is busy.
DATABASE_RETRY_AFTER = env.int("DATABASE_RETRY_AFTER", default=10)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'nbarchive.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default must work on a fresh checkout: create the folder the SQLite file lives in.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# PostgreSQL: each worker thread keeps its connection for up to 10 minutes instead of opening one per request
# (measured: 124 -> 300 API requests/s), and checks it before reusing it after a request, so a database restart
# costs a reconnection instead of a 503. SQLite opens a file: nothing to save. A conn_max_age in DATABASE_URL wins.
if "CONN_MAX_AGE" not in DATABASES["default"]:
    _is_sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0 if _is_sqlite else 600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if env.str("NBARCHIVE_TEST_DATABASE_NAME", default=""):
    # Lets concurrent test runs on one PostgreSQL server use separate test databases.
    # (SQLite: a file under VAR_DIR, not in the current directory.)
    _test_name = env.str("NBARCHIVE_TEST_DATABASE_NAME")
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        _test_name = str(VAR_DIR / f"{_test_name}.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": _test_name}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend",
                           "allauth.account.auth_backends.AuthenticationBackend"]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "repository:my_uploads"
LOGOUT_REDIRECT_URL = "repository:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Files --------------------------------------------------------------------------------------------
STATIC_URL = "static/"
# `manage.py collectstatic` writes here (with DEBUG off: hashed names and the manifest every page needs); an image
# builds it once at a path of its own, so that a different NBARCHIVE_VAR_DIR at run time does not hide it.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"

S3_BUCKET = env.str("S3_BUCKET", default="")
BACKUP_S3_BUCKET = env.str("BACKUP_S3_BUCKET", default="")
S3_ENDPOINT_URL = env.str("S3_ENDPOINT_URL", default="") or None
S3_REGION = env.str("S3_REGION", default="us-east-1")
S3_ACCESS_KEY_ID = env.str("S3_ACCESS_KEY_ID", default="") or None
S3_SECRET_ACCESS_KEY = env.str("S3_SECRET_ACCESS_KEY", default="") or None
# Part size and parallelism of multipart uploads. They bound the memory an upload holds: roughly
# (concurrency + queued parts) x part size, whatever the file size.
S3_MULTIPART_CHUNK_SIZE = env.int("S3_MULTIPART_CHUNK_SIZE", default=8 * 1024 * 1024)
S3_MULTIPART_CONCURRENCY = env.int("S3_MULTIPART_CONCURRENCY", default=4)


def _s3_storage(bucket: str) -> dict:
    # django-storages' S3Storage with the SDK's errors translated (repository/integrations/s3/client.py), which also
    # turns the part size and concurrency into boto3's TransferConfig: nothing here imports boto3.
    return {
        "BACKEND": "repository.integrations.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": S3_ENDPOINT_URL,
            "region_name": S3_REGION,
            "access_key": S3_ACCESS_KEY_ID,
            "secret_key": S3_SECRET_ACCESS_KEY,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            # Keys are unique per upload, so there is nothing to protect by asking S3 first.
            "file_overwrite": True,
            "multipart_chunksize": S3_MULTIPART_CHUNK_SIZE,
            "max_concurrency": S3_MULTIPART_CONCURRENCY,
        },
    }


def _local_storage(directory: Path) -> dict:
    return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(directory)}}


STORAGES = {
    "default": _local_storage(MEDIA_ROOT),
    "blobs": _s3_storage(S3_BUCKET) if S3_BUCKET else _local_storage(VAR_DIR / "blobs"),
    "backup": _s3_storage(BACKUP_S3_BUCKET) if BACKUP_S3_BUCKET else _local_storage(VAR_DIR / "backup"),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
                    else "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Deposit limits -----------------------------------------------------------------------------------
MAX_FILE_SIZE = env.int("NBARCHIVE_MAX_FILE_SIZE", default=50 * 1024**3)
MAX_FILES_PER_VERSION = env.int("NBARCHIVE_MAX_FILES_PER_VERSION", default=100)
# A notebook is parsed whole to validate it, so it has a cap of its own, far below MAX_FILE_SIZE.
MAX_NOTEBOOK_SIZE = env.int("NBARCHIVE_MAX_NOTEBOOK_SIZE", default=200 * 1024**2)
UPLOAD_CHUNK_SIZE = 1024 * 1024

# --- Background tasks ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_SPOOL = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_SPOOL / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_SPOOL / "queue"),
        "data_folder_out": str(CELERY_BROKER_SPOOL / "queue"),
        "processed_folder": str(CELERY_BROKER_SPOOL / "processed"),
        # Without this kombu writes its exchange tables into the current directory.
        "control_folder": str(CELERY_BROKER_SPOOL / "control"),
        "store_processed": False,
        # kombu looks for new messages once a second by default: up to a second before a direct upload's check
        # starts, for a user watching it. A directory listing ten times a second costs next to nothing.
        "polling_interval": 0.1,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# DOI syncs have a queue of their own: a registrar that hangs then holds only the slots of the worker consuming
# `dois`, and file moves, upload checks and e-mail on `celery` never queue behind it.
CELERY_TASK_ROUTES = {"repository.tasks.run_verification_task": {"queue": "verification"},
                      "repository.tasks.doi_sync_task": {"queue": "dois"},
                      "repository.tasks.doi_sync_pending_task": {"queue": "dois"}}

# --- Cache ---------------------------------------------------------------------------------------------
# What is costly to compute and keyed by content: the moderators' diff of two notebooks (computed by a worker, read
# by the web pages, so the cache must be shared by both kinds of process), formatted citations, notebooks' tables
# of contents. CACHE_URL names a shared server (redis://127.0.0.1:6379/1); unset, a directory under VAR_DIR that
# every process of this machine shares (process memory would not: the web would never see the worker's diffs).
CACHES = {"default": env.cache_url("CACHE_URL") if env.str("CACHE_URL", default="") else {
    "BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(VAR_DIR / "cache")}}

# --- Pluggable parts ----------------------------------------------------------------------------------
DOI_PROVIDER = env.str("DOI_PROVIDER", default="local")  # local | datacite
DOI_PREFIX = env.str("DOI_PREFIX", default="10.5072")
DATACITE_API_URL = env.str("DATACITE_API_URL", default="https://api.test.datacite.org")
DATACITE_USERNAME = env.str("DATACITE_USERNAME", default="")
DATACITE_PASSWORD = env.str("DATACITE_PASSWORD", default="")
DATACITE_TEST_MODE = env.bool("DATACITE_TEST_MODE", default=True)
# The publisher named in DataCite metadata and citations (DataCite 4.5: an object with a name).
DOI_PUBLISHER = env.str("DOI_PUBLISHER", default="nbarchive")
# Seconds DataCite may take to answer a request (read), and to accept the connection at all (connect): a host
# that does not answer is given up on quickly, a slow answer still gets its time.
DATACITE_TIMEOUT = env.float("DATACITE_TIMEOUT", default=20.0)
DATACITE_CONNECT_TIMEOUT = env.float("DATACITE_CONNECT_TIMEOUT", default=5.0)
# The DOI sync task retries with exponential backoff (DOI_SYNC_RETRY_BASE seconds, doubling, capped at
# DOI_SYNC_RETRY_MAX); a periodic sweep picks up whatever is still pending after the retries ran out.
DOI_SYNC_RETRY_BASE = env.float("DOI_SYNC_RETRY_BASE", default=30.0)
DOI_SYNC_RETRY_MAX = env.float("DOI_SYNC_RETRY_MAX", default=3600.0)
DOI_SYNC_MAX_RETRIES = env.int("DOI_SYNC_MAX_RETRIES", default=12)
# Inside one attempt, a passing failure (5xx, 429, a connection error) is tried again up to this many times in
# all, after DOI_SYNC_INNER_DELAY seconds doubling, with jitter; not after a timeout that used up the read timeout.
DOI_SYNC_INNER_ATTEMPTS = env.int("DOI_SYNC_INNER_ATTEMPTS", default=3)
DOI_SYNC_INNER_DELAY = env.float("DOI_SYNC_INNER_DELAY", default=1.0)
# DOIs still not in sync with the registrar this many minutes after they changed are e-mailed to the admins
# (once per DOI until it is in sync again) and counted in /metrics (nbarchive_doi_outbox_overdue); 0: never.
DOI_PENDING_ALERT_MINUTES = env.float("DOI_PENDING_ALERT_MINUTES", default=30.0)

# --- Moderation ---------------------------------------------------------------------------------------
MODERATION_DEFAULT_COMMUNITY = env.str("MODERATION_DEFAULT_COMMUNITY", default="general")
MODERATION_MAX_OPEN_SUBMISSIONS = env.int("MODERATION_MAX_OPEN_SUBMISSIONS", default=10)
MODERATION_MAX_SUBMISSIONS_PER_DAY = env.int("MODERATION_MAX_SUBMISSIONS_PER_DAY", default=20)
# Rendering a notebook for moderators happens in a separate, time- and memory-limited process.
NOTEBOOK_RENDER_TIMEOUT = env.int("NOTEBOOK_RENDER_TIMEOUT", default=30)
NOTEBOOK_RENDER_MEMORY = env.int("NOTEBOOK_RENDER_MEMORY", default=3 * 1024**3)
NOTEBOOK_RENDER_RETRY_AFTER = env.int("NOTEBOOK_RENDER_RETRY_AFTER", default=600)

# --- Accounts (django-allauth; ORCID sign-in appears once its credentials are set) ----------------------
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="none")
ORCID_CLIENT_ID = env.str("ORCID_CLIENT_ID", default="")
ORCID_SECRET = env.str("ORCID_SECRET", default="")
ORCID_BASE_DOMAIN = env.str("ORCID_BASE_DOMAIN", default="orcid.org")
SOCIALACCOUNT_PROVIDERS = {"orcid": {"BASE_DOMAIN": ORCID_BASE_DOMAIN, "MEMBER_API": False}}
if ORCID_CLIENT_ID and ORCID_SECRET:
    SOCIALACCOUNT_PROVIDERS["orcid"]["APPS"] = [{"client_id": ORCID_CLIENT_ID, "secret": ORCID_SECRET}]

# The embedded default writes e-mails (what the console backend would print) to files under var/mail, so that
# notifications do not drown the server's log; production sets an SMTP backend.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = Path(env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail")))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="nbarchive <noreply@localhost>")

# --- REST API -----------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Bearer first: its challenge header is what makes DRF answer 401 (not 403) to anonymous calls.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "repository.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "repository.api.exception_handler.problem_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bounded nesting depth: JSON nested 100,000 levels deep is a 400, not a RecursionError (repository/json_input.py).
    "DEFAULT_PARSER_CLASSES": ["repository.json_input.BoundedJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "nbarchive API",
    "DESCRIPTION": "Deposit Jupyter notebooks with their data references and a pinned container image.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several outputs have a `state` with their own choices: each set is named here, or the schema's names would
    # depend on which other sets exist.
    # Enums named for what they are, not after the field ("StateEnum", "FilesEnum"); a version's `access.files` is
    # FileAccessEnum.
    "ENUM_NAME_OVERRIDES": {"UploadStateEnum": ["uploading", "checking", "ready", "failed"],
                            "AccessRequestStateEnum": "repository.access.models.AccessRequest.State",
                            "ShareLinkStateEnum": ["live", "expired", "revoked"],
                            "FileAccessEnum": "repository.models.FileAccess"},
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "repository.api.serializers.strict_inputs_in_schema"],
}

# Logs (repository/observability/logs.py): one JSON object per line in production (LOG_FORMAT=json, the default
# with DEBUG off), readable lines in development (text); both carry the request id, which follows the Celery tasks
# a request starts, and pass through the redaction of secrets and tokens.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "repository.observability.logs.ContextFilter"}},
    "formatters": {
        "json": {"()": "repository.observability.logs.JsonFormatter"},
        "text": {"()": "repository.observability.logs.TextFormatter",
                 "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # runserver's request lines too: they carry query strings, which may hold signatures and tokens.
    # Django's own loggers write to our handler only (their default console handler would print every line a
    # second time, unredacted, and mail_admins would e-mail request details).
    "loggers": {"django": {"handlers": ["console"], "level": "INFO", "propagate": False},
                "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu warns on every connection that a filesystem broker has no host name; there is none to give.
    LOGGING["loggers"]["kombu.connection"] = {"level": "ERROR"}
# The worker logs through the same handler (JSON, request ids, redaction) instead of installing its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- OAI-PMH provider (harvest/provider) ----------------------------------------------------------------
OAI_REPOSITORY_NAME = env.str("OAI_REPOSITORY_NAME", default="nbarchive")
# Identify's adminEmail (one or more, comma-separated); OAI-PMH.xsd wants user@host.domain.
OAI_ADMIN_EMAIL = env.list("OAI_ADMIN_EMAIL", default=["admin@example.org"])
# Items per ListRecords/ListIdentifiers response. A page costs a fixed part (request, query planning, token)
# besides its items, which larger pages spread thinner (tests/bench/oai.py measures a harvest); a page of 1000 is
# 1.4 MB of oai_dc or 2.4 MB of oai_datacite, much less gzipped.
OAI_PAGE_SIZE = env.int("OAI_PAGE_SIZE", default=1000)
# Seconds a resumptionToken stays valid (its expirationDate).
OAI_TOKEN_MAX_AGE = env.int("OAI_TOKEN_MAX_AGE", default=24 * 3600)
# The <namespace> of item identifiers oai:<namespace>:<record id>/v<n>; empty: the host of SITE_URL. Never change
# it once harvested: harvesters know the items by these identifiers.
OAI_IDENTIFIER_NAMESPACE = env.str("OAI_IDENTIFIER_NAMESPACE", default="")

# --- Harvester (harvest/harvester) ------------------------------------------------------------------------
# httpx2, the HTTP client under oaipmh-scythe, logs every request at INFO: one line per page of a harvest would
# drown the progress bar and fill the logs of scheduled harvests. Failures still reach the log as our errors.
LOGGING.setdefault("loggers", {})["httpx2"] = {"level": "WARNING"}

# --- Primary storage (repository/storage.py, services/blobs.py) ---------------------------------------------
# Downloads from S3 answer with a redirect to a presigned GET URL valid for this many seconds (a local directory is
# streamed by the application, with Range support).
S3_PRESIGNED_TTL = env.int("S3_PRESIGNED_TTL", default=300)
# Bytes that nothing uses any more (a discarded draft's files, an executed notebook no run keeps) are deleted when
# the garbage collector (Celery beat daily, or `manage.py gc_blobs`) has found them unused for this many hours;
# temporary objects of uploads that crashed are deleted after as long.
BLOB_GC_GRACE_HOURS = env.float("BLOB_GC_GRACE_HOURS", default=72.0)

# Subsystems keep their settings in modules of their own, read from the environment the same way.
from .backup import *  # noqa: E402, F403
from .gitlab import *  # noqa: E402, F403
from .observability import *  # noqa: E402, F403
from .search import *  # noqa: E402, F403
from .security import *  # noqa: E402, F403
from .uploads import *  # noqa: E402, F403
from .verification import *  # noqa: E402, F403

# How long a verification task may take before Celery stops it: the sandbox's own wall clock plus staging; with
# RUNNER=gitlab it waits for the pipeline instead (the pending deadline, the job's timeout and a grace period).
VERIFICATION_TASK_SOFT_LIMIT_SECONDS = max(  # noqa: F405 (the subsystems' settings, imported above)
    RUNNER_NOTEBOOK_TIMEOUT_SECONDS,  # noqa: F405
    int(GITLAB_PENDING_TIMEOUT_SECONDS) + GITLAB_JOB_TIMEOUT_SECONDS + 300 if RUNNER == "gitlab" else 0,  # noqa: F405
) + STAGING_TOTAL_SECONDS + 120  # noqa: F405
# Redis hands a task that is not acknowledged within its visibility timeout (one hour by default) to another
# worker. Tasks are acknowledged late (after they finish), so a verification longer than that would run twice at
# once: the timeout must outlast the longest task. RabbitMQ has no such timeout.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "sentinel://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": VERIFICATION_TASK_SOFT_LIMIT_SECONDS + 60 + 600}
