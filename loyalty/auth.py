"""API keys on requests: the Bearer key → its client, and the scope check.

Keys are made, rotated and revoked in `loyalty.domain.clients` (only their SHA-256 is stored).
Every request looks its key up in the database: nothing is cached, so a revoked key stops
working on every app server with the commit that revokes it, and a rotated key's predecessor
at the end of its grace period, and an expired key (`expires_at`) at once.

`last_used_at` is written at most once a minute per key. The lookup reads whether it is due
(older than `LAST_USED_EVERY`); only then does `_note_use` run a conditional UPDATE (`WHERE
last_used_at < now - 60 s`: of concurrent workers one writes, the others change nothing) in a
short write transaction of its own, before the view runs. Not in the lookup's transaction: on
SQLite that is a deferred read, and a deferred read that turns into a write fails with
SQLITE_BUSY when another connection wrote meanwhile, instead of waiting; a transaction begun as
a write (BEGIN IMMEDIATE) waits for the lock. Nothing of the request has been read yet, so
ending the lookup's transaction first loses nothing (the unit of work does the same). On
PostgreSQL the UPDATE takes a FOR NO KEY UPDATE row lock, which does not block the
KEY SHARE locks that inserts referring to the client take. The cost: one extra short commit per
key per minute. A failed write (the lock not had in time) is logged and the request goes on:
`last_used_at` is a hint, never worth refusing a request for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from flask_smorest.utils import load_info_from_docstring
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.exc import OperationalError

from loyalty.domain.clients import hash_key
from loyalty.domain.sql import Fast
from loyalty.errors import Forbidden, Unauthorized
from loyalty.extensions import db, write_transaction
from loyalty.models import SCOPES, ApiClient
from loyalty.models.types import utcnow

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

#: `last_used_at` is written at most this often per key
LAST_USED_EVERY = timedelta(seconds=60)

ALL = ("pos", "webshop", "admin", "reports")

__all__ = ["ALL", "Client", "authenticate", "current_client"]


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    scopes: frozenset[str]
    #: the one store this key posts purchases and returns for (None: any)
    store_id: str | None = None


_CLIENT_BY_KEY = Fast(
    select(
        ApiClient.id,
        ApiClient.name,
        ApiClient.scopes,
        ApiClient.store_id,
        or_(ApiClient.last_used_at.is_(None), ApiClient.last_used_at < bindparam("stale")),
    )
    .where(
        ApiClient.revoked_at.is_(None),
        or_(ApiClient.expires_at.is_(None), ApiClient.expires_at > bindparam("now")),
        or_(
            ApiClient.key_hash == bindparam("digest"),
            and_(
                ApiClient.previous_key_hash == bindparam("digest"),
                ApiClient.previous_key_expires_at > bindparam("now"),
            ),
        ),
    )
    .limit(1)
)


_NOTE_USE = Fast(
    update(ApiClient)
    .where(
        ApiClient.id == bindparam("client_id"),
        or_(ApiClient.last_used_at.is_(None), ApiClient.last_used_at < bindparam("stale")),
    )
    .values(last_used_at=bindparam("now"))
)


def _lookup(key: str) -> Client | None:
    """The active, unexpired client whose key, or whose replaced key still in its grace period,
    is `key`; its `last_used_at` noted when due (`_note_use`).

    One prepared statement per request (`Fast`): every request pays for it, nothing is cached."""
    now = utcnow()
    params = {"digest": hash_key(key), "now": now, "stale": now - LAST_USED_EVERY}
    row = _CLIENT_BY_KEY.first(db.session.connection(), params)
    if row is None:
        return None
    if row[4]:
        _note_use(row[0], params)
    return Client(row[0], row[1], frozenset(row[2]), row[3])


def _note_use(client_id: int, params: dict[str, Any]) -> None:
    """`last_used_at = now` unless another request of this key wrote it in the last minute; in
    a short write transaction of its own (the module's docstring says why)."""
    session = db.session()
    session.commit()  # ends the lookup's read transaction (nothing else was read yet)
    token = write_transaction.set(True)
    try:
        _NOTE_USE.run(session.connection(), {**params, "client_id": client_id})
        session.commit()
    except OperationalError:
        session.rollback()
        log.warning("last_used_at of API client %s not written (database busy)", client_id)
    finally:
        write_transaction.reset(token)


def authenticate(scopes: tuple[str, ...]) -> Client:
    """The calling client, checked for one of `scopes` (`admin` may do everything).

    Raises Unauthorized (401) or Forbidden (403).
    """
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > 200:
        raise Unauthorized("Send 'Authorization: Bearer <api key>'.")
    client = _lookup(key)
    if client is None:
        raise Unauthorized("Unknown, expired or revoked API key.")
    if "admin" not in client.scopes and not client.scopes.intersection(scopes):
        raise Forbidden(f"This operation needs one of the scopes: {', '.join(scopes)}.")
    return client


def require(*scopes: str) -> Callable[[F], F]:
    """Decorator: the view needs a key with one of `scopes`; puts the client in `g.client`.

    In the OpenAPI document the operation gets the bearer security and its scopes are added
    to its description (the docstring's, or one given with `@blp.doc`); its 401 and 403
    responses are documented by `LoyaltyApi`."""
    for scope in scopes:
        assert scope in SCOPES, scope

    def decorator(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.client = authenticate(scopes)
            return func(*args, **kwargs)

        apidoc = deepcopy(getattr(func, "_apidoc", {}))
        manual = apidoc.setdefault("manual_doc", {})
        manual["security"] = [{"bearerAuth": []}]
        described = manual.get("description") or load_info_from_docstring(func.__doc__ or "").get(
            "description", ""
        )
        note = f"Scopes: {', '.join(scopes)}" + ("" if "admin" in scopes else " (or admin)")
        manual["description"] = f"{described}\n\n{note}".strip()
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def current_client() -> Client:
    return g.client
