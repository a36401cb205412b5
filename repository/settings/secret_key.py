"""The SECRET_KEY when none is given: random, generated on the first start and kept in VAR_DIR/secret_key.

A constant development key would be public (it is in the source), and everything signed with it could be forged
by anyone: sessions, password reset links, the signed run-data links of GitLab jobs. A key generated per
checkout is as convenient and secret. Production still sets SECRET_KEY (repository/checks.py refuses a start
with DEBUG off without it): machines sharing a database must share the key.
"""

import os
import secrets
from pathlib import Path

KEY_FILE_NAME = "secret_key"


def secret_key_kept_in(var_dir: Path) -> str:
    """The key in var_dir/secret_key, created (mode 0600) when there is none yet; when var_dir cannot be written
    (a read-only deployment that forgot SECRET_KEY), a key for this process only, so that the start-up checks can
    still say what is missing instead of the settings failing to import."""
    try:
        return _read_or_create(var_dir)
    except OSError:
        return secrets.token_urlsafe(50)


def _read_or_create(var_dir: Path) -> str:
    path = var_dir / KEY_FILE_NAME
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    # Written whole under a temporary name, then linked into place: the web server and the worker started beside
    # it may both get here, and neither may read a half-written key or replace the other's.
    temporary = var_dir / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # the other process won; its key is the one
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip()
