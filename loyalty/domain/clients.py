"""API clients that no key can act as: the sources the service records data under itself."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.domain.context import Actor
from loyalty.models import ApiClient
from loyalty.models.types import utcnow


def system_actor(session: Session, name: str, label: str) -> Actor:
    """The client `name` (created revoked on first use, with an unguessable key hash), so that
    `(api_client_id, external_id)` keeps its meaning for purchases that come from Stripe
    webhooks or an import."""
    client = session.scalar(select(ApiClient).where(ApiClient.name == name))
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
