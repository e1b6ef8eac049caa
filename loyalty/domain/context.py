"""Who is acting, and the deployment settings the rules need."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from loyalty.errors import LimitExceeded


@dataclass(frozen=True)
class Actor:
    """The API client (or the CLI) a change is recorded against."""

    client_id: int | None
    name: str

    #: an `admin` key (or the CLI): may act on objects other clients made
    admin: bool = False
    #: a key bound to one store: its purchases and returns are that store's (clients.check_store)
    store_id: str | None = None
    #: a staff member signed in to the back office: their account's id and e-mail, which the
    #: audit log keeps beside the name (names are not unique)
    staff_account_id: int | None = None
    staff_email: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        return cls(client_id=None, name="cli", admin=True)

    def owns(self, client_id: int | None) -> bool:
        """Whether this actor may act on an object `client_id` made: its maker, or an admin."""
        return self.admin or (client_id is not None and client_id == self.client_id)


@dataclass(frozen=True)
class Settings:
    card_prefix: str = "990"
    card_length: int = 16
    phone_region: str | None = None
    #: the ranges a pre-printed card's number must lie in (LOYALTY_CARD_PREFIXES); empty: the
    #: programme's own prefix only
    card_prefixes: tuple[str, ...] = ()

    @property
    def issuable_prefixes(self) -> tuple[str, ...]:
        """The prefixes a card number given to enrol or issue with must start with."""
        return self.card_prefixes or (self.card_prefix,)


@dataclass(frozen=True)
class Limits:
    """Ceilings on what one request may add to the programme's liability. Each field is read
    from the environment variable `LOYALTY_` + its name upper-cased (loyalty/config.py); a
    request above one is refused with 422 `limit_exceeded` naming it."""

    #: the largest purchase amount, minor units (100,000.00 in a currency with 2 decimals)
    max_purchase_amount: int = 10_000_000
    #: the largest staff adjustment, points either way
    max_adjustment_points: int = 100_000
    #: the largest goodwill voucher of an amount, minor units (250.00)
    max_goodwill_amount: int = 25_000
    #: the largest goodwill voucher of a percentage
    max_goodwill_percent: int = 50

    @staticmethod
    def setting(name: str) -> str:
        """The environment variable (and app config key) of the limit `name`."""
        return f"LOYALTY_{name.upper()}"

    def check(self, name: str, value: int, *, field: str) -> None:
        """Raises LimitExceeded, naming the limit and `field`, when `value` is above it."""
        limit: int = getattr(self, name)
        if value > limit:
            message = f"{value} is above the limit {self.setting(name)} = {limit}."
            raise LimitExceeded(f"{field}: {message}", errors={field: [message]})

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> Limits:
        """The limits an app config holds (missing keys: the defaults above)."""
        return cls(
            **{
                f.name: int(config.get(cls.setting(f.name), getattr(cls, f.name)))
                for f in fields(cls)
            }
        )
