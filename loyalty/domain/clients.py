"""API clients and their keys: create, rotate, revoke; and the clients no key can act as (the
sources the service records data under itself).

A key is `lk_` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored: with that
much entropy a slow hash adds nothing, and a lookup stays one indexed query. A client's name is
unique among the clients that are not revoked, so a revoked client's name can be given to a new
one (a new client: it shares nothing with the revoked one). Rotating gives a client a new key and
keeps the one it replaces working for a grace period; revoking stops both at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.domain.context import Actor
from loyalty.errors import Conflict, NotFound, ValidationFailed
from loyalty.models import SCOPES, ApiClient
from loyalty.models.types import utcnow

#: The clients of system_actor: no key is ever issued under these names.
SYSTEM_CLIENTS = frozenset({"stripe", "import"})


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


def create_client(session: Session, name: str, scopes: list[str]) -> IssuedKey:
    """A new client `name` with a new key. Raises ValidationFailed (a bad or reserved name, an
    unknown scope) or Conflict (a client of that name is active)."""
    if not name.strip() or len(name) > 100:
        raise ValidationFailed("A name is 1 to 100 characters.", field="name")
    if name in SYSTEM_CLIENTS:
        raise ValidationFailed(f"{name!r} is reserved for the service itself.", field="name")
    if not scopes or not set(scopes) <= set(SCOPES):
        raise ValidationFailed(f"Scopes are some of {', '.join(SCOPES)}.", field="scopes")
    if active_client(session, name) is not None:
        raise Conflict(
            f"An API client named {name!r} is active: rotate its key, or revoke it first.",
            field="name",
        )
    key = generate_key()
    client = ApiClient(
        name=name, key_hash=hash_key(key), key_prefix=key[:12], scopes=sorted(set(scopes))
    )
    session.add(client)
    session.flush()  # a concurrent twin loses on uq_api_clients_name_active here
    return IssuedKey(client, key)


def rotate_key(session: Session, name: str, grace: timedelta) -> IssuedKey:
    """A new key for the active client `name`; the key it had keeps working for `grace` (none:
    it stops at once). A key replaced earlier, still in its grace period, stops now: a client
    has at most two working keys. Raises NotFound."""
    client = active_client(session, name)
    if client is None:
        raise NotFound(f"No active API client named {name!r}.", field="name")
    key = generate_key()
    until = utcnow() + grace if grace > timedelta(0) else None
    client.previous_key_hash = client.key_hash if until else None
    client.previous_key_expires_at = until
    client.key_hash = hash_key(key)
    client.key_prefix = key[:12]
    session.flush()
    return IssuedKey(client, key, until)


def revoke(session: Session, name: str) -> bool:
    """Revoke the active client `name`: its key, and a replaced key still in its grace period,
    stop working with this commit. False when only revoked clients have that name.
    Raises NotFound when none has."""
    client = active_client(session, name)
    if client is None:
        if session.scalar(select(ApiClient.id).where(ApiClient.name == name).limit(1)):
            return False
        raise NotFound(f"No API client named {name!r}.", field="name")
    client.revoked_at = utcnow()
    client.previous_key_hash = None
    client.previous_key_expires_at = None
    session.flush()
    return True


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
