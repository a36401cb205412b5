"""What every part of the settings package reads: the environment and the project's folders."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# VAR_DIR holds everything the embedded defaults write: the SQLite file, media, the broker spool.
VAR_DIR = Path(env.str("NBARCHIVE_VAR_DIR", default=str(BASE_DIR / "var")))


def site_url_for_address(address: str) -> str:
    """The URL readers reach a server listening on `address` (runserver's forms: `port`, `host:port`,
    `[v6]:port`) at. A wildcard address is reached through loopback on this machine; a server meant for others
    sets SITE_URL to its public name."""
    host, _, port = address.rpartition(":")
    if not host:
        host, port = "127.0.0.1", address
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "0": "127.0.0.1"}.get(host, host)
    return f"http://{host}:{port}"
