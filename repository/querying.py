"""Query building blocks shared by the apps' selectors."""

from django.core.exceptions import EmptyResultSet
from django.db.models import Lookup


class AnyOf(Lookup):
    """`column IN (values)`, written for PostgreSQL as `column = ANY(%s)` with one array parameter.

    psycopg parses a query's placeholders in Python and caches the result only for queries with at most 50
    parameters, so `IN` over a page of a hundred ids is parsed again on every page (a millisecond or two per
    query). One array parameter keeps the query text the same for every page. Other databases get `IN`.
    """

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        if not self.rhs:
            raise EmptyResultSet
        column, params = compiler.compile(self.lhs)
        return f"{column} IN ({', '.join(['%s'] * len(self.rhs))})", (*params, *self.rhs)

    def as_postgresql(self, compiler, connection):
        if not self.rhs:
            raise EmptyResultSet
        column, params = compiler.compile(self.lhs)
        return f"{column} = ANY(%s)", (*params, list(self.rhs))
