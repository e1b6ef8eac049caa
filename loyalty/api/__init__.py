"""HTTP API v1: one blueprint per resource (registered by `loyalty.app.create_app`)."""

from __future__ import annotations

from flask import current_app

from loyalty.auth import current_client
from loyalty.domain.cards import parse_prefixes
from loyalty.domain.context import Actor, Limits, Settings


def settings() -> Settings:
    """The domain settings, from the app config (built once per app)."""
    cached = current_app.extensions.get("loyalty_settings")
    if cached is None:
        cfg = current_app.config
        cached = Settings(
            card_prefix=cfg["LOYALTY_CARD_PREFIX"],
            card_length=cfg["LOYALTY_CARD_LENGTH"],
            phone_region=cfg["LOYALTY_PHONE_REGION"],
            card_prefixes=parse_prefixes(
                cfg.get("LOYALTY_CARD_PREFIXES"), cfg["LOYALTY_CARD_PREFIX"]
            ),
        )
        current_app.extensions["loyalty_settings"] = cached
    return cached


def actor() -> Actor:
    """The calling API client, as the domain records it."""
    client = current_client()
    return Actor(
        client_id=client.id,
        name=client.name,
        admin="admin" in client.scopes,
        store_id=client.store_id,
    )


def limits() -> Limits:
    """The liability ceilings, from the app config."""
    return Limits.from_mapping(current_app.config)
