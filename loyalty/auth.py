"""API keys on requests: the Bearer key → its client, and the scope check.

Keys are made, rotated and revoked in `loyalty.domain.clients` (only their SHA-256 is stored).
Every request looks its key up in the database: nothing is cached, so a revoked key stops
working on every app server with the commit that revokes it, and a rotated key's predecessor
at the end of its grace period.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request
from flask_smorest.utils import load_info_from_docstring
from sqlalchemy import and_, bindparam, or_, select

from loyalty.domain.clients import generate_key, hash_key
from loyalty.domain.sql import Fast
from loyalty.errors import Forbidden, Unauthorized
from loyalty.extensions import db
from loyalty.models import SCOPES, ApiClient
from loyalty.models.types import utcnow

F = TypeVar("F", bound=Callable[..., Any])

ALL = ("pos", "webshop", "admin", "reports")

__all__ = ["ALL", "Client", "authenticate", "current_client", "generate_key", "hash_key"]


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    scopes: frozenset[str]


_CLIENT_BY_KEY = Fast(
    select(ApiClient.id, ApiClient.name, ApiClient.scopes)
    .where(
        ApiClient.revoked_at.is_(None),
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


def _lookup(key: str) -> Client | None:
    """The active client whose key, or whose replaced key still in its grace period, is `key`.

    One prepared statement per request (`Fast`): every request pays for it, nothing is cached."""
    row = _CLIENT_BY_KEY.first(db.session.connection(), {"digest": hash_key(key), "now": utcnow()})
    return Client(row[0], row[1], frozenset(row[2])) if row else None


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
        raise Unauthorized("Unknown or revoked API key.")
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
