"""What every part of the settings package reads: the environment and the project's folders."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# VAR_DIR holds everything the embedded defaults write: the SQLite file, media, the broker spool.
VAR_DIR = Path(env.str("NBARCHIVE_VAR_DIR", default=str(BASE_DIR / "var")))
