"""What a purchase earns: the base rate, the member's tier and the earning rules, explained.

`awards_for_purchase` is the one computation of every purchase path (till, batch, Stripe
webhook, quote, import). Rounding, in integers and exact decimals only:

- base: `amount × points_per_unit / 10^exponent`, rounded by the programme's `rounding`;
- each line's share of the base: the base split by the lines' values (quantity × unit_price),
  rounded down, the points left over going one each to the largest remainders (first line on
  a tie), so the shares add up to the base;
- a multiplier (tier or rule): floor((multiplier − 1) × the base points it applies to) — the
  whole base, or the base shares of the lines it matches; a multiplier of 1 or less adds 0;
- a bonus_points rule: its value, once per purchase;
- then a rule's `max_points_per_purchase`, then what is left of its budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo


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


@dataclass(frozen=True)
class Rule:
    """An earning rule as earning reads it (built from the row by `earning_rules.rule_of`).

    Empty condition sets match anything. `skus`/`categories` make it a line rule: it applies
    to the matching lines only. `starts_at`/`ends_at` (end exclusive): a naive value is a wall
    clock time in the programme's zone, an aware one an instant.
    """

    id: int
    name: str
    kind: str  # multiplier | bonus_points
    value: Decimal
    version: int = 1
    priority: int = 0
    stackable: bool = True
    max_points_per_purchase: int | None = None
    budget: int | None = None
    store_ids: frozenset[str] = frozenset()
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    weekdays: frozenset[int] = frozenset()
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    min_spend: int | None = None
    tiers: frozenset[str] = frozenset()  # casefolded names
    segments: frozenset[str] = frozenset()

    @property
    def per_line(self) -> bool:
        return bool(self.skus or self.categories)


class TierView(Protocol):
    """The member's tier as earning reads it (tiers.TierView is one)."""

    @property
    def name(self) -> str: ...
    @property
    def multiplier(self) -> Decimal: ...


@dataclass
class Earning:
    """What a purchase earns: the ledger awards, the explanation (`breakdown`, base first, then
    the tier, then each rule that added points; the parts add up to `total`), the points of
    each line (empty when the purchase has no lines of any value), and the budget each
    budgeted rule uses."""

    awards: list[Award]
    breakdown: list[dict[str, Any]]
    line_points: list[int] = field(default_factory=list)
    budget_use: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(a.points for a in self.awards)


@dataclass(frozen=True)
class _Basket:
    amount: int
    base: int
    local: datetime  # occurred_at on the programme's wall clock (naive)
    occurred_at: datetime
    store_id: str | None
    lines: list[dict[str, Any]]
    values: list[int]
    line_base: list[int]
    tier: str | None
    segment: str | None


def allocate(points: int, weights: Sequence[int]) -> list[int]:
    """`points` split by `weights` (≥ 0, not all 0): each share rounded down, the points left
    over one each to the largest remainders (the first on a tie). Adds up to `points`."""
    total = sum(weights)
    shares = [points * w // total for w in weights]
    left = points - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(points * weights[i] % total), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def extra_points(multiplier: Decimal, base: int) -> int:
    """floor((multiplier − 1) × base), never below 0."""
    if multiplier <= 1 or base <= 0:
        return 0
    return int(((multiplier - 1) * base).to_integral_value(rounding=ROUND_FLOOR))


def _in_window(rule: Rule, basket: _Basket) -> bool:
    for bound, after in ((rule.starts_at, True), (rule.ends_at, False)):
        if bound is None:
            continue
        at = basket.local if bound.tzinfo is None else basket.occurred_at
        if (at < bound) if after else (at >= bound):
            return False
    return True


def _applies(rule: Rule, basket: _Basket) -> bool:
    """The purchase-wide conditions: store, weekday, window, minimum spend, tier, segment."""
    return (
        (not rule.store_ids or basket.store_id in rule.store_ids)
        and (not rule.weekdays or basket.local.isoweekday() in rule.weekdays)
        and _in_window(rule, basket)
        and (rule.min_spend is None or basket.amount >= rule.min_spend)
        and (not rule.tiers or (basket.tier or "").casefold() in rule.tiers)
        and (not rule.segments or basket.segment in rule.segments)
    )


def _line_matches(rule: Rule, line: dict[str, Any]) -> bool:
    return line.get("sku") in rule.skus or line.get("category") in rule.categories


def _rule_part(
    rule: Rule, basket: _Basket, budget_left: Mapping[int, int] | None
) -> tuple[int, list[int]] | None:
    """(points, line weights) a rule adds, after its cap and budget; None when it adds none."""
    if not _applies(rule, basket):
        return None
    weights = basket.values
    if rule.per_line:
        mask = [_line_matches(rule, line) for line in basket.lines]
        if not any(mask):
            return None
        weights = [v if m else 0 for v, m in zip(basket.values, mask, strict=True)]
        if not any(weights):
            weights = [
                line["quantity"] if m else 0 for line, m in zip(basket.lines, mask, strict=True)
            ]
        base = sum(b for b, m in zip(basket.line_base, mask, strict=False) if m)
    else:
        base = basket.base
    points = extra_points(rule.value, base) if rule.kind == "multiplier" else int(rule.value)
    if rule.max_points_per_purchase is not None:
        points = min(points, rule.max_points_per_purchase)
    if rule.budget is not None and budget_left is not None:
        points = min(points, max(budget_left.get(rule.id, 0), 0))
    return (points, weights) if points > 0 else None


def _chosen(
    rules: Sequence[Rule], basket: _Basket, budget_left: Mapping[int, int] | None
) -> list[tuple[Rule, int, list[int]]]:
    """The rules that add points, highest priority first (then by id): every stackable one and
    the best single non-stackable one (most points; on a tie the higher priority, then the
    lower id)."""
    stackable: list[tuple[Rule, int, list[int]]] = []
    best: tuple[Rule, int, list[int]] | None = None
    for rule in sorted(rules, key=lambda r: (-r.priority, r.id)):
        part = _rule_part(rule, basket, budget_left)
        if part is None:
            continue
        if rule.stackable:
            stackable.append((rule, *part))
        elif best is None or part[0] > best[1]:
            best = (rule, *part)
    chosen = stackable + ([best] if best is not None else [])
    return sorted(chosen, key=lambda c: (-c[0].priority, c[0].id))


def _basket(
    program: Rates,
    zone: ZoneInfo,
    amount_minor: int,
    occurred_at: datetime,
    lines: list[dict[str, Any]],
    store_id: str | None,
    tier: TierView | None,
    member_segment: str | None,
) -> _Basket:
    base = scale(amount_minor, program.points_per_unit, program.currency_exponent, program.rounding)
    values = [line["quantity"] * (line.get("unit_price") or 0) for line in lines]
    return _Basket(
        amount=amount_minor,
        base=base,
        local=occurred_at.astimezone(zone).replace(tzinfo=None),
        occurred_at=occurred_at,
        store_id=store_id,
        lines=lines,
        values=values,
        line_base=allocate(base, values) if any(values) else [],
        tier=tier.name if tier is not None else None,
        segment=member_segment,
    )


def awards_for_purchase(
    program: Rates,
    *,
    amount_minor: int,
    occurred_at: datetime,
    lines: list[dict[str, Any]] | None = None,
    store_id: str | None = None,
    rules: Sequence[Rule] = (),
    tier: TierView | None = None,
    member_segment: str | None = None,
    zone: ZoneInfo | None = None,
    budget_left: Mapping[int, int] | None = None,
) -> Earning:
    """What a purchase earns: an `earn` award of the base and one `bonus` award of what the
    tier and the rules add; the breakdown explains both.

    `tier`: the member's tier before this purchase. `zone`: the programme's (weekdays and
    windows; UTC when None). `budget_left`: what each budgeted rule may still give (None: as
    much as it would, for a first pass before the budgets are locked).
    """
    basket = _basket(
        program,
        zone or ZoneInfo("UTC"),
        amount_minor,
        occurred_at,
        lines or [],
        store_id,
        tier,
        member_segment,
    )
    breakdown: list[dict[str, Any]] = [{"rule_id": None, "name": "base", "points": basket.base}]
    parts: list[tuple[int, list[int]]] = []
    if tier is not None:
        tier_points = extra_points(tier.multiplier, basket.base)
        breakdown.append({"rule_id": None, "name": f"tier {tier.name}", "points": tier_points})
        parts.append((tier_points, basket.values))
    budget_use: dict[int, int] = {}
    for rule, points, weights in _chosen(rules, basket, budget_left):
        breakdown.append(
            {"rule_id": rule.id, "rule_version": rule.version, "name": rule.name, "points": points}
        )
        parts.append((points, weights))
        if rule.budget is not None:
            budget_use[rule.id] = points
    bonus = sum(points for points, _ in parts)
    awards = [Award("earn", basket.base, "purchase")] if basket.base > 0 else []
    if bonus > 0:
        awards.append(Award("bonus", bonus, "purchase_bonus"))
    return Earning(awards, breakdown, _line_points(basket, parts), budget_use)


def _line_points(basket: _Basket, parts: list[tuple[int, list[int]]]) -> list[int]:
    """Each line's points: its base share plus its share of each part (by the part's weights)."""
    if not basket.line_base:
        return []
    totals = list(basket.line_base)
    for points, weights in parts:
        if points > 0:
            for i, share in enumerate(allocate(points, weights)):
                totals[i] += share
    return totals


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


def reversal_for_lines(
    bought: Sequence[tuple[str, int, int]],
    returned_before: Sequence[dict[str, Any]],
    returning: Sequence[dict[str, Any]],
    points_earned: int,
    points_reversed_before: int,
) -> int:
    """Points a return of lines takes back: per sku, its lines' points (`bought`: sku,
    quantity, points of each purchase line) by the share of its quantity returned, cumulative
    and rounded down — after this return, floor(points × returned quantity / quantity) of the
    sku is taken back, minus what earlier returns took. A returned bonus item takes back its
    bonus. Never more than the purchase has left to take back."""
    points: dict[str, int] = {}
    quantity: dict[str, int] = {}
    for sku, qty, line_points in bought:
        points[sku] = points.get(sku, 0) + line_points
        quantity[sku] = quantity.get(sku, 0) + qty
    before: dict[str, int] = {}
    for line in returned_before:
        before[line["sku"]] = before.get(line["sku"], 0) + line["quantity"]
    taken = 0
    for line in returning:
        sku, b = line["sku"], before.get(line["sku"], 0)
        after = b + line["quantity"]
        taken += points[sku] * after // quantity[sku] - points[sku] * b // quantity[sku]
        before[sku] = after
    return max(0, min(taken, points_earned - points_reversed_before))
