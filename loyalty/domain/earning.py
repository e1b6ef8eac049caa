"""What a purchase earns. The seam where earning rules, tiers and bonuses plug in later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class Rates(Protocol):
    """What earning needs of the programme (the Program row, or a row of its columns)."""

    @property
    def currency(self) -> str: ...
    @property
    def currency_exponent(self) -> int: ...
    @property
    def points_per_unit(self) -> int: ...
    @property
    def rounding(self) -> str: ...


def scale(amount_minor: int, points_per_unit: int, exponent: int, rounding: str) -> int:
    """`amount_minor × points_per_unit / 10^exponent`, rounded by `rounding`, in integers only.

    `down` is floor, `up` is ceiling, `half_up` rounds .5 away from zero. `amount_minor` ≥ 0.
    """
    if amount_minor < 0:
        raise ValueError("amount must be non-negative")
    numerator = amount_minor * points_per_unit
    denominator = 10**exponent
    if rounding == "down":
        return numerator // denominator
    if rounding == "up":
        return -(-numerator // denominator)
    if rounding == "half_up":
        return (2 * numerator + denominator) // (2 * denominator)
    raise ValueError(f"unknown rounding {rounding!r}")


@dataclass(frozen=True)
class Award:
    """Points to post for a purchase: one ledger entry each."""

    kind: str  # earn | bonus
    points: int
    reason: str


def awards_for_purchase(
    program: Rates,
    *,
    amount_minor: int,
    occurred_at: datetime,
    lines: list[dict[str, Any]] | None = None,
    store_id: str | None = None,
) -> list[Award]:
    """The base earn on the amount actually paid. Earning rules (multipliers, bonuses) and tiers
    add `bonus` awards here; returns take back the total pro rata."""
    base = scale(amount_minor, program.points_per_unit, program.currency_exponent, program.rounding)
    return [Award("earn", base, "purchase")] if base > 0 else []


def reversal_for_return(
    points_earned: int,
    amount_minor: int,
    returned_before: int,
    points_reversed_before: int,
    return_amount: int,
) -> int:
    """Points a return takes back: cumulative pro rata, rounded down.

    The purchase's reversed total after this return is floor(earned × returned_total / amount);
    this return reverses that minus what earlier returns reversed. Never more than earned.
    """
    returned_total = returned_before + return_amount
    if amount_minor == 0:
        return 0
    target = points_earned * returned_total // amount_minor
    return max(0, min(target, points_earned) - points_reversed_before)
