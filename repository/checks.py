"""System checks that refuse a production configuration that kept a development default.

A configuration is treated as production when DEBUG is off (checked at every start: runserver, migrate,
gunicorn through `manage.py check`) or when `python manage.py check --deploy` is run, which also refuses DEBUG on.
"""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


def _kept_development_defaults() -> list[Error]:
    errors = []
    if not settings.SECRET_KEY_GIVEN or len(settings.SECRET_KEY) < 32:
        errors.append(
            Error(
                # A key generated into VAR_DIR is one machine's: web and workers elsewhere would not share it.
                "SECRET_KEY is not set (or shorter than 32 characters).",
                hint=("Set SECRET_KEY to a long random value: "
                      "python -c 'import secrets; print(secrets.token_urlsafe(50))'"),
                id="nbarchive.E001",
            )
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        errors.append(
            Error(
                "The database is SQLite; production needs PostgreSQL.",
                hint="Set DATABASE_URL=postgres://user:password@host:5432/name.",
                id="nbarchive.E002",
            )
        )
    if "admin@example.org" in settings.OAI_ADMIN_EMAIL:
        errors.append(
            Error(
                "OAI_ADMIN_EMAIL is the example address; harvesters write to it when something is wrong.",
                hint="Set OAI_ADMIN_EMAIL to the address of the people who run this archive.",
                id="nbarchive.E008",
            )
        )
    return errors


def _staging_exemptions() -> list[Error]:
    """Exempting loopback or link-local ranges from the staging address check reopens SSRF to this machine and
    to cloud metadata; it is for tests only."""
    import ipaddress

    errors = []
    for cidr in settings.STAGING_ALLOWED_NETWORKS:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            errors.append(Error(f"STAGING_ALLOWED_NETWORKS has '{cidr}', which is not a network.", id="nbarchive.E004"))
            continue
        if network.is_loopback or network.is_link_local or network.is_unspecified or network.prefixlen == 0:
            errors.append(Error(
                f"STAGING_ALLOWED_NETWORKS exempts {cidr}: data references could then reach this machine or cloud "
                "metadata.", hint="List only the private network of an on-premise archive.", id="nbarchive.E005"))
    return errors


@register()
def doi_provider_check(app_configs, **kwargs):
    """A DOI registrar that cannot work would leave accepted versions `publishing` for ever: refuse to start."""
    from repository.doi.base import PROVIDERS

    if settings.DOI_PROVIDER not in PROVIDERS:
        return [Error(f"DOI_PROVIDER is '{settings.DOI_PROVIDER}'.", hint=f"Use one of: {', '.join(PROVIDERS)}.",
                      id="nbarchive.E006")]
    if settings.DOI_PROVIDER == "datacite" and not (settings.DATACITE_USERNAME and settings.DATACITE_PASSWORD
                                                    and settings.DOI_PREFIX):
        return [Error("DOI_PROVIDER is datacite but DATACITE_USERNAME, DATACITE_PASSWORD or DOI_PREFIX is empty.",
                      hint="Set the repository account's credentials and prefix from DataCite Fabrica.",
                      id="nbarchive.E007")]
    return []


@register(Tags.security)
def production_configuration_check(app_configs, **kwargs):
    return [] if settings.DEBUG else _kept_development_defaults() + _staging_exemptions()


@register(Tags.security, deploy=True)
def deployment_check(app_configs, **kwargs):
    errors = []
    if settings.DEBUG:
        errors.append(
            Error(
                "DJANGO_DEBUG is on: tracebacks and settings would be shown to anyone.",
                hint="Set DJANGO_DEBUG=0 in production.",
                id="nbarchive.E003",
            )
        )
        # With DEBUG off these already ran as a regular check; with it on, --deploy reports them too.
        errors.extend(_kept_development_defaults() + _staging_exemptions())
    return errors


@register()
def gitlab_check(app_configs, **kwargs):
    """RUNNER=gitlab, the mirror or linked projects without an instance to talk to would fail every task."""
    errors = []
    if settings.RUNNER not in ("local", "image", "gitlab"):
        errors.append(Error(f"RUNNER is '{settings.RUNNER}'.", hint="Use image, local or gitlab.",
                            id="nbarchive.E020"))
    needs_instance = settings.RUNNER == "gitlab" or settings.GITLAB_MIRROR_ENABLED
    if needs_instance and not (settings.GITLAB_URL and settings.GITLAB_TOKEN):
        errors.append(Error("RUNNER=gitlab or GITLAB_MIRROR_ENABLED needs GITLAB_URL and GITLAB_TOKEN.",
                            hint="Set the instance's URL and a token with the api scope.", id="nbarchive.E021"))
    if settings.RUNNER == "gitlab" and not settings.GITLAB_PROJECT:
        errors.append(Error("RUNNER=gitlab needs GITLAB_PROJECT, the verification project runs are committed to.",
                            hint="Create a project without CI/CD variables and name it as namespace/project.",
                            id="nbarchive.E022"))
    if settings.RUNNER == "gitlab" and _is_loopback_url(settings.SITE_URL):
        errors.append(Warning(f"RUNNER=gitlab and SITE_URL is {settings.SITE_URL}: CI jobs download a run's data "
                              "from SITE_URL and cannot reach this machine's loopback.",
                              hint="Set SITE_URL to the public address of nbarchive.", id="nbarchive.W020"))
    if settings.GITLAB_MIRROR_ENABLED and not settings.GITLAB_MIRROR_NAMESPACE:
        errors.append(Error("GITLAB_MIRROR_ENABLED needs GITLAB_MIRROR_NAMESPACE, the group mirrors are created in.",
                            id="nbarchive.E023"))
    return errors


def _is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


@register()
def image_runner_check(app_configs, **kwargs):
    """What the image runner needs, one line each: its tools, a writable cache the sandbox uid can reach, the auth
    file it was given. Warnings: without them notebooks run in the local kernel environment instead. Like the
    production checks, at every start with DEBUG off, and with `check --deploy`: a development checkout without
    the tools is not told so before every command."""
    return [] if settings.DEBUG else _image_runner_problems()


@register(deploy=True)
def image_runner_deployment_check(app_configs, **kwargs):
    return _image_runner_problems() if settings.DEBUG else []


def _image_runner_problems() -> list[Warning]:
    import shutil
    import tempfile
    from pathlib import Path

    from repository.runners.images import missing_tools
    from repository.runners.images.inspection import unreachable_ancestor

    messages = []
    missing = missing_tools()
    if missing:
        messages.append(Warning(f"{' and '.join(missing)} not on PATH: the image runner is unavailable, notebooks "
                                "run in the local kernel environment instead.",
                                hint=f"apt-get install {' '.join(missing)}", id="nbarchive.W030"))
    if shutil.which("bwrap") is None:
        messages.append(Warning("bwrap not on PATH: no notebook can run in a sandbox, in an image or locally.",
                                hint="apt-get install bubblewrap", id="nbarchive.W034"))
    cache = Path(settings.IMAGE_CACHE_DIR)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache):
            pass
    except OSError as exc:
        messages.append(Warning(f"IMAGE_CACHE_DIR {cache} is not writable ({exc.strerror}): images cannot be pulled.",
                                hint="Create it for the worker's user or point IMAGE_CACHE_DIR elsewhere.",
                                id="nbarchive.W031"))
    else:
        blocked = unreachable_ancestor(cache)
        if blocked is not None:
            messages.append(Warning(f"IMAGE_CACHE_DIR {cache} is below {blocked}, which the sandbox uid cannot "
                                    "search: images cannot be bound into the sandbox.",
                                    hint=f"chmod o+x {blocked}, or move IMAGE_CACHE_DIR.", id="nbarchive.W032"))
    auth_file = settings.IMAGE_REGISTRY_AUTH_FILE
    if auth_file and not Path(auth_file).is_file():
        messages.append(Warning(f"IMAGE_REGISTRY_AUTH_FILE {auth_file} does not exist: private images cannot be "
                                "pulled.", id="nbarchive.W033"))
    return messages


@register()
def sandbox_check(app_configs, **kwargs):
    """What the bubblewrap sandbox needs on a verification worker, one line each: setpriv for a root worker, the
    kernel environment, folders the sandbox uid must pass through, user namespaces. Without them every run ends
    `error` (the operator's problem, never a verdict), so the worker says so at start. When, like the image runner's
    checks, only with DEBUG off or `check --deploy`."""
    return [] if settings.DEBUG else _sandbox_problems()


@register(deploy=True)
def sandbox_deployment_check(app_configs, **kwargs):
    return _sandbox_problems() if settings.DEBUG else []


def _sandbox_problems() -> list[Warning]:
    import os
    import shutil
    import tempfile
    from pathlib import Path

    if settings.RUNNER == "gitlab" or shutil.which("bwrap") is None:
        return []  # the sandbox does not run here, or W034 already said that bwrap is missing
    messages = []
    root = os.geteuid() == 0
    if root and shutil.which("setpriv") is None:
        messages.append(Warning("setpriv not on PATH: a root worker cannot drop to the sandbox uid, so no notebook "
                                "can run.", hint="apt-get install util-linux", id="nbarchive.W040"))
    kernel_python = Path(settings.RUNNER_KERNEL_PYTHON)
    if settings.RUNNER == "local" and not kernel_python.exists():
        messages.append(Warning(f"RUNNER_KERNEL_PYTHON {kernel_python} does not exist: RUNNER=local has no kernel "
                                "environment to run notebooks with.",
                                hint="Build it with `make kernel-env`, or point RUNNER_KERNEL_PYTHON at one.",
                                id="nbarchive.W041"))
    elif settings.RUNNER == "local" and root:
        blocked = _unreachable_by_the_sandbox_uid(kernel_python.parent.parent)
        if blocked is not None:
            messages.append(Warning(f"The kernel environment {kernel_python.parent.parent} is below {blocked}, which "
                                    "the sandbox uid cannot search: bwrap cannot bind it, so no notebook can run.",
                                    hint=f"chmod o+x {blocked}, or move the kernel environment.",
                                    id="nbarchive.W042"))
    temporary = Path(tempfile.gettempdir())
    blocked = _unreachable_by_the_sandbox_uid(temporary) if root else None
    if blocked is not None:
        messages.append(Warning(f"The temporary folder {temporary} is below {blocked}, which the sandbox uid cannot "
                                "search: the run folders made there cannot be bound into the sandbox.",
                                hint="Point TMPDIR at a folder others can search (chmod o+x).", id="nbarchive.W043"))
    refusal = _bwrap_refusal()
    if refusal:
        messages.append(Warning(f"bwrap cannot make a sandbox here ({refusal}): no notebook can run.",
                                hint="Allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, "
                                     "user.max_user_namespaces > 0), or run the worker as root.",
                                id="nbarchive.W044"))
    return messages


def _unreachable_by_the_sandbox_uid(path):
    """The first folder on the way to `path`, or to where its links lead, that the sandbox uid cannot search."""
    from repository.runners.images.inspection import unreachable_ancestor

    return unreachable_ancestor(path) or unreachable_ancestor(path.resolve())


def _bwrap_refusal() -> str:
    """bwrap's own complaint when it cannot make the namespaces a run needs (as this worker's user), else ''."""
    import shutil
    import subprocess

    true = shutil.which("true") or "/bin/true"
    try:
        probe = subprocess.run(["bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", true],
                               capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if probe.returncode == 0:
        return ""
    said = [line for line in probe.stderr.splitlines() if line.strip()]
    return said[-1][:300] if said else f"exit code {probe.returncode}"
