"""API clients and their keys: create, rotate, revoke; and the clients no key can act as (the
sources the service records data under itself).

A key is `lk_` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored: with that
much entropy a slow hash adds nothing, and a lookup stays one indexed query. A client's name is
unique among the clients that are not revoked, so a revoked client's name can be given to a new
one (a new client: it shares nothing with the revoked one). Rotating gives a client a new key and
keeps the one it replaces working for a grace period; revoking stops both at once.

A key may expire (`expires_at`: it then fails like an unknown one; a rotation keeps the date or
sets a new one) and may be bound to one store (`store_id`: `check_store`). Creating, rotating and
revoking are recorded in the audit trail (`api_key.create`, `api_key.rotate`, `api_key.revoke`,
target `api_key` and the client's id), never with the key or its hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.domain import audit
from loyalty.domain.context import Actor
from loyalty.errors import Conflict, NotFound, StoreNotAllowed, ValidationFailed
from loyalty.models import SCOPES, ApiClient
from loyalty.models.types import utcnow

#: The clients of system_actor: no key is ever issued under these names.
SYSTEM_CLIENTS = frozenset({"stripe", "import"})
#: the longest a key may be made to last (create-api-key --expires-in-days)
MAX_EXPIRY_DAYS = 3650


def generate_key() -> str:
    return "lk_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A key as issued: shown once, then only its hash is kept."""

    client: ApiClient
    key: str
    #: when the key it replaced stops working (None: it stopped at once, or there was none)
    previous_until: datetime | None = None


def active_client(session: Session, name: str) -> ApiClient | None:
    """The client `name` that is not revoked (there is at most one)."""
    return session.scalar(
        select(ApiClient).where(ApiClient.name == name, ApiClient.revoked_at.is_(None))
    )


def _expiry(expires_in_days: int | None) -> datetime | None:
    """When a key made now for `expires_in_days` days stops working (None: never)."""
    if expires_in_days is None:
        return None
    if not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise ValidationFailed(f"A key lasts 1 to {MAX_EXPIRY_DAYS} days.", field="expires_in_days")
    return utcnow() + timedelta(days=expires_in_days)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def create_client(
    session: Session,
    name: str,
    scopes: list[str],
    *,
    expires_in_days: int | None = None,
    store_id: str | None = None,
    actor: Actor | None = None,
) -> IssuedKey:
    """A new client `name` with a new key, expiring after `expires_in_days` (None: never),
    bound to `store_id` if given; audit-logged (`api_key.create`) as `actor` (default: the CLI).
    Raises ValidationFailed (a bad or reserved name, an unknown scope, a bad expiry or store)
    or Conflict (a client of that name is active)."""
    if not name.strip() or len(name) > 100:
        raise ValidationFailed("A name is 1 to 100 characters.", field="name")
    if name in SYSTEM_CLIENTS:
        raise ValidationFailed(f"{name!r} is reserved for the service itself.", field="name")
    if not scopes or not set(scopes) <= set(SCOPES):
        raise ValidationFailed(f"Scopes are some of {', '.join(SCOPES)}.", field="scopes")
    if store_id is not None and (not store_id.strip() or len(store_id) > 100):
        raise ValidationFailed("A store id is 1 to 100 characters.", field="store_id")
    expires_at = _expiry(expires_in_days)
    if active_client(session, name) is not None:
        raise Conflict(
            f"An API client named {name!r} is active: rotate its key, or revoke it first.",
            field="name",
        )
    key = generate_key()
    client = ApiClient(
        name=name,
        key_hash=hash_key(key),
        key_prefix=key[:12],
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        store_id=store_id,
    )
    session.add(client)
    session.flush()  # a concurrent twin loses on uq_api_clients_name_active here
    after = {"name": name, "scopes": client.scopes, "expires_at": _iso(expires_at)}
    after["store_id"] = store_id
    audit.record(
        session,
        actor or Actor.cli(),
        "api_key.create",
        "api_key",
        client.id,
        {"key_prefix": client.key_prefix},
        changes=audit.diff({}, after),
    )
    return IssuedKey(client, key)


def rotate_key(
    session: Session,
    name: str,
    grace: timedelta,
    *,
    expires_in_days: int | None = None,
    actor: Actor | None = None,
) -> IssuedKey:
    """A new key for the active client `name`; the key it had keeps working for `grace` (none:
    it stops at once). A key replaced earlier, still in its grace period, stops now: a client
    has at most two working keys. The expiry stays (the new key expires when the old one
    would have) unless `expires_in_days` sets a new one. Audit-logged (`api_key.rotate`).
    Raises NotFound, ValidationFailed (a bad expiry)."""
    client = active_client(session, name)
    if client is None:
        raise NotFound(f"No active API client named {name!r}.", field="name")
    before = {"key_prefix": client.key_prefix, "expires_at": _iso(client.expires_at)}
    if expires_in_days is not None:
        client.expires_at = _expiry(expires_in_days)
    key = generate_key()
    until = utcnow() + grace if grace > timedelta(0) else None
    client.previous_key_hash = client.key_hash if until else None
    client.previous_key_expires_at = until
    client.key_hash = hash_key(key)
    client.key_prefix = key[:12]
    session.flush()
    after = {"key_prefix": client.key_prefix, "expires_at": _iso(client.expires_at)}
    audit.record(
        session,
        actor or Actor.cli(),
        "api_key.rotate",
        "api_key",
        client.id,
        {"name": name, "previous_key_until": _iso(until)},
        changes=audit.diff(before, after),
    )
    return IssuedKey(client, key, until)


def revoke(session: Session, name: str, *, actor: Actor | None = None) -> bool:
    """Revoke the active client `name`: its key, and a replaced key still in its grace period,
    stop working with this commit; audit-logged (`api_key.revoke`). False when only revoked
    clients have that name. Raises NotFound when none has."""
    client = active_client(session, name)
    if client is None:
        if session.scalar(select(ApiClient.id).where(ApiClient.name == name).limit(1)):
            return False
        raise NotFound(f"No API client named {name!r}.", field="name")
    client.revoked_at = utcnow()
    client.previous_key_hash = None
    client.previous_key_expires_at = None
    session.flush()
    audit.record(
        session,
        actor or Actor.cli(),
        "api_key.revoke",
        "api_key",
        client.id,
        {"name": name},
        changes={"revoked_at": (None, _iso(client.revoked_at))},
    )
    return True


def check_store(actor: Actor, store_id: str | None) -> str | None:
    """The store a purchase or return posted by `actor` is for: `store_id` as given, or the
    key's own store when it is bound to one and none is given. Raises StoreNotAllowed (403,
    field `store_id`) when a bound key names another store."""
    if actor.store_id is None:
        return store_id
    if store_id is not None and store_id != actor.store_id:
        raise StoreNotAllowed(
            f"This API key posts for store {actor.store_id!r} only.", field="store_id"
        )
    return actor.store_id


def system_actor(session: Session, name: str, label: str) -> Actor:
    """The client `name` (created revoked on first use, with an unguessable key hash), so that
    `(api_client_id, external_id)` keeps its meaning for purchases that come from Stripe
    webhooks or an import."""
    assert name in SYSTEM_CLIENTS, name
    client = session.scalar(
        select(ApiClient).where(ApiClient.name == name).order_by(ApiClient.id).limit(1)
    )
    if client is None:
        client = ApiClient(
            name=name,
            key_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
            key_prefix=label,
            scopes=[],
            revoked_at=utcnow(),  # no key can act as this client
        )
        session.add(client)
        session.flush()
    return Actor(client_id=client.id, name=name)


#: the system client Stripe webhooks record purchases and returns under
STRIPE = "stripe"


def system_client_id(session: Session, name: str) -> int | None:
    """The id of the system client `name` (the one system_actor acts as), if it exists yet;
    nothing is created."""
    assert name in SYSTEM_CLIENTS, name
    return session.scalar(
        select(ApiClient.id).where(ApiClient.name == name).order_by(ApiClient.id).limit(1)
    )
