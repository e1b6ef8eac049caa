"""Small SQL helpers shared by the domain modules."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import UniqueConstraint
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.models.base import Base


def upsert(session: Session, model: Any) -> Any:
    """The dialect's INSERT for `model`, which has ON CONFLICT (PostgreSQL and SQLite alike)."""
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(model)


def bigint_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers, for a `%s::bigint[]` parameter of psycopg.
    psycopg dumps a list element by element in Python: 8.6 ms for 18k ids against 3.2 ms for
    this, the round trip included (an import batch sends three such arrays)."""
    return "{" + ",".join(map(str, values)) + "}"


class Fast:
    """A Core statement of the hot path, run straight on psycopg on PostgreSQL.

    SQLAlchemy's execution context (parameter processing, result metadata, the Row objects)
    costs more CPU than psycopg's own round trip for the few short statements of a purchase. On
    PostgreSQL the statement is compiled once, with the dialect's own SQL (casts included), and
    run as a prepared statement on the connection's psycopg connection, in the same transaction;
    elsewhere it goes through SQLAlchemy as usual. Rows come back as plain tuples either way.

    Only for statements whose bind values need no type processing on PostgreSQL (ints, strings,
    aware datetimes: UTCDateTime passes those through unchanged) and whose results are read by
    position; datetime results are the driver's, in the connection's time zone.
    """

    __slots__ = ("_defaults", "_sql", "statement")

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._sql: str | None = None
        self._defaults: dict[str, Any] = {}

    def _compiled(self, conn: Connection) -> str:
        if self._sql is None:
            compiled = self.statement.compile(dialect=conn.dialect)
            # literals Core turned into parameters (`program.id = 1` → %(id_1)s)
            self._defaults = {k: v for k, v in compiled.params.items() if v is not None}
            self._sql = str(compiled)
        return self._sql

    def first(self, conn: Connection, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row (a tuple), or None."""
        if conn.dialect.name != "postgresql":
            row = conn.execute(self.statement, params).first()
            return None if row is None else tuple(row)
        return self._execute(conn, params).fetchone()

    def all(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """All the rows (tuples)."""
        if conn.dialect.name != "postgresql":
            return [tuple(row) for row in conn.execute(self.statement, params)]
        return self._execute(conn, params).fetchall()

    def run(self, conn: Connection, params: dict[str, Any]) -> None:
        """Execute a statement that returns no rows."""
        if conn.dialect.name != "postgresql":
            conn.execute(self.statement, params)
        else:
            self._execute(conn, params)

    def _execute(self, conn: Connection, params: dict[str, Any]) -> Any:
        sql = self._compiled(conn)
        if self._defaults:
            params = {**self._defaults, **params}
        return conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            sql, params, prepare=True
        )


def json_param(conn: Connection, value: Any) -> Any:
    """A JSON value as a bind parameter of a `Fast` statement: psycopg's Jsonb on PostgreSQL
    (Fast skips SQLAlchemy's type processing there), the value itself elsewhere."""
    if conn.dialect.name == "postgresql":
        return Jsonb(value)
    return value


def constraint_name(exc: IntegrityError) -> str | None:
    """The name of the constraint an IntegrityError violated.

    PostgreSQL names it in the error's diagnostics (psycopg: `diag.constraint_name`). SQLite
    names the columns instead ("UNIQUE constraint failed: members.email"); they are looked up in
    the models' unique constraints, whose names follow the same naming convention.
    """
    diag = getattr(exc.orig, "diag", None)
    if diag is not None:
        return diag.constraint_name
    message = str(exc.orig)
    prefix = "UNIQUE constraint failed: "
    if not message.startswith(prefix):
        return None
    columns = tuple(message[len(prefix) :].split(", "))
    return _sqlite_unique_constraints().get(columns)


@functools.cache
def _sqlite_unique_constraints() -> dict[tuple[str, ...], str]:
    """("table.column", ...) → constraint name, for every unique constraint of the models."""
    found: dict[tuple[str, ...], str] = {}
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint) and constraint.name:
                key = tuple(f"{table.name}.{c.name}" for c in constraint.columns)
                found[key] = str(constraint.name)
    return found
