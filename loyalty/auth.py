"""API keys and scopes.

A key is `lk_` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored: with
that much entropy a slow hash adds nothing, and a lookup stays one indexed query. Clients are cached
in-process for LOYALTY_API_KEY_CACHE_SECONDS (default 5 s), so a revoked key stops working within
that time on every app server.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from sqlalchemy import select

from loyalty.errors import Forbidden, Unauthorized
from loyalty.extensions import db
from loyalty.models import SCOPES, ApiClient

F = TypeVar("F", bound=Callable[..., Any])

ALL = ("pos", "webshop", "admin", "reports")


@dataclass(frozen=True)
class Client:
    id: int
    name: str
    scopes: frozenset[str]


def generate_key() -> str:
    return "lk_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


_cache: dict[str, tuple[float, Client | None]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _lookup(key: str) -> Client | None:
    digest = hash_key(key)
    ttl = current_app.config["LOYALTY_API_KEY_CACHE_SECONDS"]
    now = time.monotonic()
    if ttl > 0:
        hit = _cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
    row = db.session.execute(
        select(ApiClient.id, ApiClient.name, ApiClient.scopes).where(
            ApiClient.key_hash == digest, ApiClient.revoked_at.is_(None)
        )
    ).first()
    client = Client(row.id, row.name, frozenset(row.scopes)) if row else None
    if ttl > 0:
        with _cache_lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[digest] = (now + ttl, client)
    return client


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
    """Decorator: the view needs a key with one of `scopes`; puts the client in `g.client`."""
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
        note = f"Scopes: {', '.join(scopes)}" + ("" if "admin" in scopes else " (or admin)")
        manual["description"] = (manual.get("description", "") + "\n\n" + note).strip()
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def current_client() -> Client:
    return g.client
