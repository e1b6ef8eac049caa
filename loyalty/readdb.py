"""Reads that may go to a replica: the metrics, and the staff dashboard's figures.

With LOYALTY_READ_DATABASE_URL set (a PostgreSQL streaming replica of the primary), `reading()`
gives a session on it and how far behind the primary it is; otherwise a session on the primary.
When the replica cannot be reached, or cancels the query, the request fails with 503
`replica_unavailable`, or, with LOYALTY_READ_FALLBACK=1, reads from the primary instead: before
the figures are read with `reading()`; before or during with `read(compute)`, which runs
`compute` again on the primary when the replica fails half-way.

Every wait on the replica is bounded, so that a hung replica cannot hold an app server's workers:
connecting (CONNECT_TIMEOUT), each statement (LOYALTY_READ_STATEMENT_TIMEOUT_MS, then
`QueryCanceled`), and a connection whose peer went silent (TCP keepalives and
`tcp_user_timeout`: the kernel gives up on it within seconds, not the ~15 minutes of TCP
retransmissions). Any of these, like any `OperationalError` from the replica, is a 503.

How far behind: 0 when the replica streams from the primary (its WAL receiver is there and, as
far as the role may see, streaming) and has replayed all it received; else the seconds since the
last transaction it replayed committed on the primary (pg_last_xact_replay_timestamp). So a
replica cut off from its primary (the receiver gone or reconnecting) says how old its figures
are, instead of looking up to date because it replayed all it got.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from flask import current_app
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from loyalty.errors import ReplicaUnavailable
from loyalty.extensions import db

log = logging.getLogger(__name__)
T = TypeVar("T")

EXTENSION = "loyalty_read_engine"
#: seconds to wait for a connection to the replica before it counts as down
CONNECT_TIMEOUT = 3
#: libpq's TCP settings for the replica's connections: a silent peer is probed after 5 s idle,
#: every 2 s, dropped after 3 unanswered probes; unacknowledged data is given up on after 10 s
TCP_SETTINGS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}

_LAG = text(
    """
    SELECT CASE
             WHEN NOT pg_is_in_recovery() THEN 0
             WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
                  AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver
                               -- status is NULL for a role without pg_read_all_stats
                               WHERE status IS NULL OR status = 'streaming')
               THEN 0
             ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
           END
    """
)


@dataclass(frozen=True)
class Source:
    """Where a read goes: its session, `name` ("primary" or "replica") and the replica's lag."""

    session: Session
    name: str
    lag_seconds: float | None

    def stamp(self, answer: dict) -> dict:
        """The answer with where it was read from and how far behind that was."""
        return {**answer, "read_from": self.name, "replica_lag_seconds": self.lag_seconds}


def _engine() -> Engine | None:
    url = current_app.config.get("LOYALTY_READ_DATABASE_URL")
    if not url:
        return None
    engine = current_app.extensions.get(EXTENSION)
    if engine is None:
        timeout_ms = current_app.config.get("LOYALTY_READ_STATEMENT_TIMEOUT_MS", 20000)
        engine = create_engine(
            url,
            pool_pre_ping=True,  # a replica restarted since: a new connection, not a 503
            hide_parameters=True,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT,
                **TCP_SETTINGS,
                "options": f"-c statement_timeout={int(timeout_ms)}",
            },
        )
        current_app.extensions[EXTENSION] = engine
    return engine


def _replica_gone(exc: DBAPIError) -> bool:
    """Whether an error from the replica means it is unavailable rather than a bug: a lost
    connection, a statement cancelled (its timeout, or a conflict with recovery) or any other
    OperationalError."""
    return (
        exc.connection_invalidated
        or isinstance(exc, OperationalError)
        or isinstance(exc.orig, psycopg.errors.QueryCanceled)
        or "recovery" in str(exc.orig)
    )


def _lag(session: Session) -> float:
    return round(float(session.execute(_LAG).scalar_one()), 3)


@contextmanager
def reading() -> Iterator[Source]:
    """The session the metrics read from (see the module's docstring)."""
    engine = _engine()
    if engine is None:
        yield Source(db.session(), "primary", None)
        return
    session = Session(bind=engine)
    try:
        try:
            lag = _lag(session)
        except DBAPIError as exc:
            if not current_app.config.get("LOYALTY_READ_FALLBACK"):
                raise ReplicaUnavailable(
                    "The metrics replica cannot be reached; try again later."
                ) from exc
            log.warning("metrics replica unreachable, reading from the primary: %s", exc.orig)
            session.close()
            yield Source(db.session(), "primary", None)
            return
        try:
            yield Source(session, "replica", lag)
        except DBAPIError as exc:
            if _replica_gone(exc):
                raise ReplicaUnavailable(
                    "The metrics replica was lost or cancelled the query; try again."
                ) from exc
            raise
    finally:
        session.close()


def read(compute: Callable[[Session], T]) -> tuple[T, Source]:
    """`compute(session)` on the session the metrics read from, and that source. A replica that
    fails during it (lost, or the statement cancelled): 503, or with LOYALTY_READ_FALLBACK=1
    `compute` once more on the primary."""
    try:
        with reading() as source:
            return compute(source.session), source
    except ReplicaUnavailable as exc:
        if not current_app.config.get("LOYALTY_READ_FALLBACK"):
            raise
        log.warning("metrics replica failed during the read, reading from the primary: %s", exc)
    primary = Source(db.session(), "primary", None)
    return compute(primary.session), primary
