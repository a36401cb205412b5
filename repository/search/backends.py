"""The two full-text engines behind one interface: which documents a text term matches, and how well.

PostgreSQL: generated `tsvector` columns with GIN indexes (migration 0015_search_index): `search_vector`
weighted title A, creators and keywords B, description C, notebook D, in the 'english' configuration (stems);
`creators_vector` for `creator:`, in 'simple' (names are not stemmed). `title:` keeps the A part (`ts_filter`).
SQLite: an FTS5 table with one column per part; `title:` and `creator:` are FTS5 column filters; ranked by bm25
with column weights in the same order. This module is the only one that knows either.
"""

from contextlib import contextmanager, nullcontext

from django.db import connection, transaction
from django.db.models import BooleanField, F, FloatField, Func, Q

from repository.search.query import Term

FTS_TABLE = "repository_searchdocument_fts"

# ts_rank's weights for D, C, B and A: a title hit outweighs any number of notebook hits.
_PG_WEIGHTS = "{0.02, 0.1, 0.3, 1.0}"
# FTS5's bm25 adds up a column's weighted hits before it saturates them, so weights alone let thirty notebook
# hits beat one in the title. Each tier is scored on its own instead (a single tier's score stays within about a
# factor of ten) and the tiers are scaled apart: title, creators and keywords, description, notebook (columns in
# the FTS5 table's order).
_SQLITE_TIERS = ((400.0, "1, 0, 0, 0, 0"), (20.0, "0, 1, 1, 0, 0"), (1.0, "0, 0, 0, 1, 0"), (0.05, "0, 0, 0, 0, 1"))


class _SqlOnDocument(Func):
    """SQL about the search document row, with `{table}` standing for however the query names its table (in a
    subquery Django calls it U0, U1...)."""

    def __init__(self, sql: str, params: list, output_field):
        super().__init__(F("pk"), output_field=output_field)
        self.sql, self.sql_params = sql, params

    def as_sql(self, compiler, connection, **extra):
        pk_sql, pk_params = compiler.compile(self.source_expressions[0])
        assert not pk_params
        table = pk_sql.rsplit(".", 1)[0]
        return self.sql.replace("{table}", table), list(self.sql_params)


def _condition(sql: str, params: list) -> Q:
    return Q(_SqlOnDocument(sql, params, BooleanField()))


# How a facet of many values per version reads them from the matched rows' JSON (keywords, creators' names).
JSON_COLUMNS = {"keyword": "keywords", "creator": "creators"}


class PostgresBackend:
    counts_in_one_pass = True

    @staticmethod
    @contextmanager
    def settings_for_search():
        """The search's statements with a larger work_mem (a common word's bitmap of ~100,000 matches turned
        lossy at the default 4 MB, and every row of a lossy page had its tsvector checked again) and without JIT
        (compiling cost ~100 ms a statement, more than it saved on these short queries; measured at a million
        versions with EXPLAIN ANALYZE). SET LOCAL: the connection's other work keeps the server's settings."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '64MB'")
            cursor.execute("SET LOCAL jit = off")
            yield

    _UNNEST = {"keyword": ("CROSS JOIN LATERAL jsonb_array_elements_text(matched.keywords) AS item(value)",
                           "item.value"),
               "creator": ("CROSS JOIN LATERAL jsonb_array_elements(matched.creators) AS item(value)",
                           "item.value ->> 'name'")}

    def _tsquery(self, term: Term, config: str) -> tuple[str, list]:
        function = "phraseto_tsquery" if term.phrase else "plainto_tsquery"
        return f"{function}('{config}'::regconfig, %s)", [term.text]

    def match(self, term: Term) -> Q:
        if term.field == "creator":
            query, params = self._tsquery(term, "simple")
            sql = f"{{table}}.creators_vector @@ {query}"
        else:
            query, params = self._tsquery(term, "english")
            sql = f"{{table}}.search_vector @@ {query}"
            if term.field == "title":
                # The index finds the candidates; ts_filter keeps those where the words are in the title.
                sql = f"({sql} AND ts_filter({{table}}.search_vector, '{{a}}') @@ {query})"
                params = params * 2
        return _condition(sql, params)

    def rank(self, terms: list[Term]) -> Func:
        parts = [self._tsquery(t, "english") for t in terms]
        query = " || ".join(sql for sql, _ in parts)
        params = [p for _, ps in parts for p in ps]
        return _SqlOnDocument(f"ts_rank('{_PG_WEIGHTS}', {{table}}.search_vector, {query})", params, FloatField())


class SqliteBackend:
    # SQLite reads a match set from its own pages quickly enough; one query per facet keeps its SQL simple.
    counts_in_one_pass = False

    @staticmethod
    def settings_for_search():
        return nullcontext()

    _UNNEST = {"keyword": (", json_each(matched.keywords) AS item", "item.value"),
               "creator": (", json_each(matched.creators) AS item", "json_extract(item.value, '$.name')")}
    _COLUMNS = {None: "", "title": "{title} : ", "creator": "{creators_text} : "}

    def _expression(self, term: Term) -> str:
        # Every term is quoted as an FTS5 string, so no input is read as FTS5 syntax.
        quoted = '"' + term.text.replace('"', '""') + '"'
        return self._COLUMNS[term.field] + quoted

    def match(self, term: Term) -> Q:
        sql = f"{{table}}.version_id IN (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s)"
        return _condition(sql, [self._expression(term)])

    def rank(self, terms: list[Term]) -> Func:
        expression = " OR ".join(self._expression(t) for t in terms)
        # bm25 is lower for better matches; negated so that higher is better, as on PostgreSQL.
        score = " + ".join(f"{scale} * bm25({FTS_TABLE}, {weights})" for scale, weights in _SQLITE_TIERS)
        return _SqlOnDocument(f"COALESCE((SELECT -({score}) FROM {FTS_TABLE} "
                              f"WHERE {FTS_TABLE} MATCH %s AND rowid = {{table}}.version_id), 0)", [expression],
                              FloatField())


def term_facet_sql(engine, name: str, documents_sql: str, limit: int) -> str:
    """SQL counting the values of facet `name` (keyword, creator) over the rows `documents_sql` selects (it must
    select the facet's JSON column): rows of (label, count), most frequent first, case-insensitively grouped.
    Read from the matched rows themselves, so the cost follows the matches, not the size of the archive."""
    lateral, label = engine._UNNEST[name]
    return (f"SELECT MIN({label}), COUNT(*) FROM ({documents_sql}) AS matched {lateral} "
            f"GROUP BY LOWER({label}) ORDER BY 2 DESC, 1 LIMIT {int(limit)}")


def one_pass_facet_sql(engine, columns: list[str], term_names: list[str], documents_sql: str, limit: int) -> str:
    """PostgreSQL: SQL counting, in one pass over the rows `documents_sql` selects (the `columns` and the JSON
    columns of `term_names`), every combination of the column facets' values and the top `limit` values of each
    term facet. Rows: (part, *columns, label, count), part being 'columns' or the term facet's name. The matches
    are read once into a materialized CTE rather than once per facet: each read of a common word's matches was
    a pass over most of the table's pages."""
    listed = ", ".join(columns)
    parts = [f"SELECT 'columns', {listed}, NULL::text, COUNT(*) FROM matched GROUP BY {listed}"]
    nulls = ", ".join("NULL" for _ in columns)
    label_at, count_at = len(columns) + 2, len(columns) + 3
    for name in term_names:
        lateral, label = engine._UNNEST[name]
        parts.append(f"(SELECT '{name}', {nulls}, MIN({label}), COUNT(*) FROM matched {lateral} "
                     f"GROUP BY LOWER({label}) ORDER BY {count_at} DESC, {label_at} LIMIT {int(limit)})")
    return f"WITH matched AS MATERIALIZED ({documents_sql}) " + " UNION ALL ".join(parts)


def backend():
    if connection.vendor == "postgresql":
        return PostgresBackend()
    if connection.vendor == "sqlite":
        return SqliteBackend()
    raise NotImplementedError(f"Search supports PostgreSQL and SQLite, not {connection.vendor}.")
