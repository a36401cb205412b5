"""Secrets out of text that leaves the process (log lines, health answers).

Two nets: the values of the secrets this process knows (its settings: keys, passwords, tokens, credentials inside
URLs) are replaced wherever they appear, and shapes that carry secrets whatever their value (a Bearer token, our
personal access tokens, a password inside a URL, `password=...` in a query or a form) are masked.
"""

import re
from urllib.parse import unquote, urlsplit

from django.conf import settings

MASK = "***"
# Shorter values are too likely to occur by chance (and too weak to matter as secrets).
MIN_SECRET_LENGTH = 6

_SECRET_SETTINGS = ("SECRET_KEY", "S3_SECRET_ACCESS_KEY", "S3_ACCESS_KEY_ID", "DATACITE_PASSWORD", "GITLAB_TOKEN",
                    "GITLAB_WEBHOOK_SECRET", "ORCID_SECRET", "METRICS_TOKEN", "EMAIL_HOST_PASSWORD")
_URL_SETTINGS = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")

_SHAPES = [
    # Authorization headers and their echoes.
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{6,}"), rf"\1\2{MASK}"),
    # Our personal access tokens (repository/services/tokens.py), wherever they are pasted.
    (re.compile(r"\bnba_[A-Za-z0-9_-]{8,}"), f"nba_{MASK}"),
    # user:password@ in any URL.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/@\s:]*):[^/@\s]*@"), rf"\1:{MASK}@"),
    # Share links (repository/access): the secret opens restricted files to whoever holds it, in the link's path
    # and in the `share` query parameter of API clients.
    (re.compile(r"(/access/share/)[^/?#\s'\"]+"), rf"\1{MASK}"),
    (re.compile(r"([?&]share=)[^&#\s'\"]+"), rf"\1{MASK}"),
    # password=..., token: "...", "secret": "..." in queries, forms, dict reprs and JSON.
    (re.compile(r"(?i)(['\"]?\b[a-z_]*(?:password|passwd|secret|token|signature|api_?key|access_?key)[a-z0-9_]*"
                r"['\"]?\s*[=:]\s*['\"]?)([^'\"&\s,;}]+)"), rf"\1{MASK}"),
]


def known_secrets() -> list[str]:
    """The secret values of this process's configuration, longest first (so a secret inside another goes too)."""
    values = {str(getattr(settings, name, "") or "") for name in _SECRET_SETTINGS}
    for database in settings.DATABASES.values():
        values.add(str(database.get("PASSWORD") or ""))
    for name in _URL_SETTINGS:
        values.add(_url_password(getattr(settings, name, "") or ""))
    for storage in settings.STORAGES.values():
        options = storage.get("OPTIONS", {})
        values.update(str(options.get(key) or "") for key in ("secret_key", "access_key"))
        values.add(_url_password(str(options.get("endpoint_url") or "")))
    return sorted((value for value in values if len(value) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def _url_password(url: str) -> str:
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def redact(text: str, secrets: list[str] | None = None) -> str:
    for secret in known_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text
