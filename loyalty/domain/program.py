"""The programme: currency, earn rate, rounding, expiry, reservations, policies, tiers."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import iso4217
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.domain import audit, tiers
from loyalty.domain.context import Actor
from loyalty.domain.earning import Rates
from loyalty.domain.views import Annotated
from loyalty.errors import CurrencyLocked, CurrencyMismatch, ValidationFailed
from loyalty.models import Program, Purchase, Reward, Voucher
from loyalty.models.types import utcnow

DEFAULTS: dict[str, Any] = {
    "name": "Loyalty",
    "currency": "EUR",
    "currency_exponent": 2,
    "points_per_unit": 1,
    "rounding": "down",
    "points_expire_after_days": None,
    "pending_days": None,
    "reservation_minutes": 15,
    "welcome_policy": None,
    "come_back_policy": None,
    "tiers": [],
    "tier_window": "rolling_365",
    "tier_downgrade": "immediate",
    "tier_grace_days": 0,
    "timezone": "UTC",
}


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of an IANA name. Raises ValidationFailed (field `timezone`) for an unknown
    one (a file path or "localtime" is not a zone name either)."""
    if name not in _zone_names():
        raise ValidationFailed(f"Unknown IANA time zone {name!r}.", field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(f"Unknown IANA time zone {name!r}.", field="timezone") from None


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def programme_zone(program: Any) -> ZoneInfo:
    """The programme's time zone (its `timezone`, an IANA name; UTC by default): its days end
    at midnight there, and weekdays and rule windows are read there."""
    return zone(getattr(program, "timezone", None) or "UTC")


#: The settings whose change recomputes every member's tier.
TIER_SETTINGS = ("tiers", "tier_window", "tier_downgrade", "tier_grace_days", "timezone")


def currency_exponent(code: str) -> int:
    """Minor-unit digits of an ISO 4217 currency (EUR 2, JPY 0, BHD 3).

    Raises ValidationFailed (field `currency`) for an unknown code or one without minor units
    defined (gold, SDR, ...).
    """
    try:
        exponent = iso4217.Currency(code.upper()).exponent
    except ValueError:
        raise ValidationFailed(f"Unknown ISO 4217 currency {code!r}.", field="currency") from None
    if exponent is None:
        raise ValidationFailed(f"{code} has no minor unit.", field="currency")
    return int(exponent)


def ensure_program(session: Session) -> Program:
    """The programme row, created with the defaults when missing."""
    program = session.get(Program, 1)
    if program is None:
        program = Program(id=1, **DEFAULTS)
        session.add(program)
        session.flush()
    return program


def get_program(session: Session) -> Program:
    return ensure_program(session)


def _expiry_from_policy(program: Program, changes: dict[str, Any]) -> None:
    """`expiry_policy` ({days} or None), the other spelling of `points_expire_after_days`,
    turned into it. GET gives both, so a client may send both with one of them changed: the
    one that differs from the current setting wins; both differing, and from each other, is
    refused (ValidationFailed)."""
    if "expiry_policy" not in changes:
        return
    policy = changes.pop("expiry_policy")
    days = None if policy is None else policy["days"]
    if "points_expire_after_days" in changes:
        other = changes["points_expire_after_days"]
        if days == program.points_expire_after_days or other == days:
            return  # unchanged by the policy, or both alike: points_expire_after_days stands
        if other != program.points_expire_after_days:
            raise ValidationFailed(
                f"expiry_policy says {days} days, points_expire_after_days {other}.",
                field="expiry_policy",
            )
    changes["points_expire_after_days"] = days


def update_program(
    session: Session, changes: dict[str, Any], actor: Actor, *, dry_run: bool = False
) -> Any:
    """Replace the programme's settings (PUT semantics for the fields given).

    Takes back what GET returns: `currency_exponent` is read-only (it follows `currency`) and is
    accepted when it equals the current value or the new currency's. A change of the tier
    table or policy (or the time zone) recomputes every member's tier (`tiers.recompute`,
    each move in `tier_changes`). `dry_run`: checked the same way, nothing written: the
    programme as it would be, with who would move (`tier_moves`). Raises CurrencyLocked,
    ValidationFailed (an unknown currency, a changed read-only field, a bad tier table).
    """
    program = session.get(Program, 1, with_for_update=True) or ensure_program(session)
    _expiry_from_policy(program, changes)
    sent_exponent = changes.pop("currency_exponent", None)
    if "currency" in changes:
        changes["currency"] = changes["currency"].upper()
        changes["currency_exponent"] = currency_exponent(changes["currency"])
        if changes["currency"] != program.currency and _amounts_recorded(session):
            raise CurrencyLocked(
                f"Purchases, vouchers or rewards are recorded in {program.currency}.",
                field="currency",
            )
    _check_read_only_exponent(program, changes, sent_exponent)
    if "tiers" in changes:
        changes["tiers"] = checked_tiers(changes["tiers"])
    if "timezone" in changes:
        zone(changes["timezone"])
    before = {k: getattr(program, k) for k in changes}
    retier = any(k in TIER_SETTINGS and before[k] != v for k, v in changes.items())
    if dry_run:
        policy = tiers.Policy.of(Annotated(program, **changes))
        moves = (
            tiers.recompute(session, at=utcnow(), actor=actor, dry_run=True, policy=policy)
            if retier
            else []
        )
        return Annotated(program, **changes, **tiers.moves_view(moves))
    for key, value in changes.items():
        setattr(program, key, value)
    session.flush()
    after = {k: getattr(program, k) for k in changes}
    audit.record(session, actor, "program.update", "program", 1, changes=audit.diff(before, after))
    if retier:
        tiers.recompute(session, at=utcnow(), actor=actor, reason="tier_table")
    return program


def _check_read_only_exponent(program: Program, changes: dict[str, Any], sent: int | None) -> None:
    """`currency_exponent` may be sent back as GET gave it (or as the new currency has it), never
    changed on its own. Raises ValidationFailed (field `currency_exponent`)."""
    if sent is None:
        return
    follows = changes.get("currency_exponent", program.currency_exponent)
    if sent not in (program.currency_exponent, follows):
        currency = changes.get("currency", program.currency)
        raise ValidationFailed(
            f"currency_exponent is read-only: it follows the currency ({currency} has {follows}); "
            "send it unchanged or leave it out.",
            field="currency_exponent",
        )


def checked_tiers(tiers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tier table as stored: names trimmed and unique (in any case), `qualifying_spend`
    strictly ascending, `benefits` a list. Each tier's own fields are checked by the schema.

    Raises ValidationFailed naming the tier's field (`tiers.2.qualifying_spend`).
    """
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, tier in enumerate(tiers):
        name = tier["name"].strip()
        if not name:
            raise ValidationFailed("A tier has a name.", field=f"tiers.{i}.name")
        if name.casefold() in seen:
            raise ValidationFailed(f"Tier name {name!r} is used twice.", field=f"tiers.{i}.name")
        seen.add(name.casefold())
        spend = tier["qualifying_spend"]
        if out and spend <= out[-1]["qualifying_spend"]:
            raise ValidationFailed(
                "Tiers are listed by qualifying_spend, strictly ascending "
                f"({spend} after {out[-1]['qualifying_spend']}).",
                field=f"tiers.{i}.qualifying_spend",
            )
        out.append(
            {
                "name": name,
                "qualifying_spend": spend,
                "multiplier": tier["multiplier"],
                "benefits": list(tier.get("benefits") or []),
            }
        )
    return out


def _amounts_recorded(session: Session) -> bool:
    return any(
        session.scalar(select(model.id).limit(1)) is not None
        for model in (Purchase, Voucher, Reward)
    )


def check_currency(program: Rates, currency: str) -> None:
    """Raises CurrencyMismatch (422 `currency_mismatch`) unless it is the programme's currency."""
    if currency.upper() != program.currency:
        raise CurrencyMismatch(
            f"This programme runs in {program.currency}, not {currency}.", field="currency"
        )
