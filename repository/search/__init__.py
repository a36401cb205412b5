"""Search over the public versions: one module for the web page, the API and the index's upkeep.

- `search_run(SearchParams(...))` -> SearchResult (hits, total, facets); query syntax in query.py.
- `search_index_version(version=...)` keeps one version's entry right (called on publish, correct, withdraw, and
  whenever a version's file access changes, e.g. an embargo lifted: a closed version is indexed without the text
  of its notebook, and the `access` facet follows);
  `search_reindex()` rebuilds all; `search_views_refresh(record_ids=...)` follows the usage counts
  (the `mostviewed` sort).
PostgreSQL full-text search in production, SQLite FTS5 on the embedded default; backends.py hides which.
"""

from repository.search.engine import FACETS, SORTS, SearchParams, SearchResult, search_params_from_query, search_run
from repository.search.indexing import (
    search_index_version,
    search_reindex,
    search_verdict_refresh,
    search_views_refresh,
)

__all__ = ["FACETS", "SORTS", "SearchParams", "SearchResult", "search_index_version", "search_params_from_query",
           "search_reindex", "search_run", "search_verdict_refresh", "search_views_refresh"]
