"""Settings of search (repository/search); part of the settings package."""

from ._env import env

# --- Search (repository/search) ------------------------------------------------------------------------
# The notebook's markdown and code cells are indexed when a version is published; a notebook larger than this is
# indexed by its metadata alone (reading it happens inside the publishing transaction).
SEARCH_NOTEBOOK_MAX_BYTES = env.int("SEARCH_NOTEBOOK_MAX_BYTES", default=20 * 1024**2)
# At most this many characters of notebook text are indexed (PostgreSQL refuses a tsvector over 1 MB).
SEARCH_NOTEBOOK_MAX_CHARS = env.int("SEARCH_NOTEBOOK_MAX_CHARS", default=200_000)
# Facet counts and totals are cached this long per search (exact: a change to the index makes them stale at once,
# see repository/search/engine.py); 0 counts every time. A shared cache (CACHE_URL) shares them between workers.
SEARCH_COUNTS_CACHE_SECONDS = env.int("SEARCH_COUNTS_CACHE_SECONDS", default=600)
