"""Query building blocks shared by the apps' selectors."""

import datetime

from django.core.exceptions import EmptyResultSet
from django.db.models import Aggregate, CharField, Func, Lookup


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


class UtcMomentText(Func):
    """A datetime column as UTC text, `YYYY-MM-DD hh:mm:ss[.ffffff]`, the form SQLite stores it in.

    For reads of many rows that only show the moment: psycopg parses a timestamp into a datetime at several
    microseconds a row, while the text is sliced for free (`datestamp = text[:10] + "T" + text[11:19] + "Z"`) and
    parsed only where the exact moment is needed (utc_moment). PostgreSQL always writes the microseconds.
    """

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="to_char(%(expressions)s AT TIME ZONE 'UTC', "
                                                             "'YYYY-MM-DD HH24:MI:SS.US')", **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores aware datetimes in SQLite as this very text, in UTC.
        return super().as_sql(compiler, connection, template="CAST(%(expressions)s AS TEXT)", **extra_context)


def utc_moment(text: str) -> datetime.datetime:
    """The datetime of a UtcMomentText value."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)


class SpaceSeparated(Aggregate):
    """The values of a text column joined with single spaces (PostgreSQL string_agg, SQLite group_concat), in no
    particular order: for values that hold no space (slugs), split and sorted by the reader."""

    function = "STRING_AGG"
    template = "%(function)s(%(expressions)s, ' ')"
    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="GROUP_CONCAT", **extra_context)
