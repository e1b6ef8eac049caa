"""Who is acting, and the deployment settings the rules need."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The API client (or the CLI) a change is recorded against."""

    client_id: int | None
    name: str

    @classmethod
    def cli(cls) -> Actor:
        return cls(client_id=None, name="cli")


@dataclass(frozen=True)
class Settings:
    card_prefix: str = "990"
    card_length: int = 16
    phone_region: str | None = None
