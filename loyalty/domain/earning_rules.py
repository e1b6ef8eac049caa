"""Earning rules: what they are, how they change (each change a new version), and the active
ones each process keeps cached by the programme's `rules_version`.

A purchase reads `rules_version` in the query it already makes for the member and the
programme, so it runs no query for the rules unless they changed since this process last
loaded them. Budgets are the exception: a rule with a budget is read row-locked (FOR UPDATE) in
the purchase's transaction, so concurrent purchases stop at the budget exactly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from loyalty.domain import audit, segments
from loyalty.domain.context import Actor
from loyalty.domain.earning import Earning, Rule, TierView, awards_for_purchase
from loyalty.domain.program import ensure_program, programme_zone
from loyalty.errors import NotFound, ValidationFailed
from loyalty.models import EarningRule, EarningRuleVersion, Program
from loyalty.models.types import utcnow

#: What a rule's `conditions` may hold (each optional; empty or absent matches anything).
CONDITION_KEYS = (
    "store_ids",
    "skus",
    "categories",
    "weekdays",
    "starts_at",
    "ends_at",
    "min_spend",
    "tiers",
    "segments",
)
_DEFINITION = (
    "name",
    "kind",
    "value",
    "conditions",
    "max_points_per_purchase",
    "priority",
    "stackable",
    "active",
    "budget",
)

# ---------------------------------------------------------------------------------------------
# The cache of active rules


_CACHE: dict[int, tuple[Rule, ...]] = {}
_COLUMNS = (
    EarningRule.id,
    EarningRule.version,
    EarningRule.name,
    EarningRule.kind,
    EarningRule.value,
    EarningRule.conditions,
    EarningRule.max_points_per_purchase,
    EarningRule.priority,
    EarningRule.stackable,
    EarningRule.budget,
)
# The version and the active rules in one statement (one snapshot).
_ACTIVE = (
    select(Program.rules_version, *_COLUMNS)
    .select_from(Program)
    .outerjoin(EarningRule, and_(EarningRule.active, EarningRule.deleted_at.is_(None)))
    .where(Program.id == 1)
)


def _when(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


def rule_of(
    id: int,
    version: int,
    name: str,
    kind: str,
    value: str,
    conditions: dict[str, Any] | None,
    cap: int | None,
    priority: int,
    stackable: bool,
    budget: int | None,
) -> Rule:
    """The Rule earning reads, from a row's columns (in the order of `_COLUMNS`)."""
    c = conditions or {}
    return Rule(
        id=id,
        version=version,
        name=name,
        kind=kind,
        value=Decimal(value),
        priority=priority,
        stackable=stackable,
        max_points_per_purchase=cap,
        budget=budget,
        store_ids=frozenset(c.get("store_ids") or ()),
        skus=frozenset(c.get("skus") or ()),
        categories=frozenset(c.get("categories") or ()),
        weekdays=frozenset(c.get("weekdays") or ()),
        starts_at=_when(c.get("starts_at")),
        ends_at=_when(c.get("ends_at")),
        min_spend=c.get("min_spend"),
        tiers=frozenset(t.casefold() for t in c.get("tiers") or ()),
        segments=frozenset(c.get("segments") or ()),
    )


def active_rules(conn: Connection, rules_version: int) -> tuple[Rule, ...]:
    """The active rules at `rules_version` (as the purchase read it): from this process's cache,
    else loaded (one query) and cached under the version loaded with them."""
    cached = _CACHE.get(rules_version)
    if cached is not None:
        return cached
    rows = conn.execute(_ACTIVE).all()
    version = int(rows[0][0]) if rows else 0
    rules = tuple(rule_of(*row[1:]) for row in rows if row[1] is not None)
    _CACHE.clear()  # only the newest version is ever asked for again
    _CACHE[version] = rules
    return rules


def needs_segment(rules: Iterable[Rule]) -> bool:
    return any(rule.segments for rule in rules)


# ---------------------------------------------------------------------------------------------
# Budgets


def budgets_left(session: Session, rule_ids: list[int], *, lock: bool) -> dict[int, int]:
    """What each rule's budget still holds; `lock`: row-locked (FOR UPDATE, in id order) for the
    rest of the transaction, as a purchase that may use it must."""
    if not rule_ids:
        return {}
    stmt = (
        select(EarningRule.id, EarningRule.budget - EarningRule.budget_used)
        .where(EarningRule.id.in_(rule_ids))
        .order_by(EarningRule.id)
    )
    if lock:
        stmt = stmt.with_for_update()
    return {int(rule_id): int(left or 0) for rule_id, left in session.execute(stmt)}


def use_budgets(session: Session, use: dict[int, int]) -> None:
    """Count the points given against the budgets (locked by `budgets_left(lock=True)`)."""
    for rule_id, points in sorted(use.items()):
        if points > 0:
            session.execute(
                update(EarningRule)
                .where(EarningRule.id == rule_id)
                .values(budget_used=EarningRule.budget_used + points)
                .execution_options(synchronize_session=False)
            )


# ---------------------------------------------------------------------------------------------
# Changing rules


def get_rule(session: Session, rule_id: int, *, for_update: bool = False) -> EarningRule:
    """A rule not deleted. Raises NotFound."""
    rule = (
        session.get(EarningRule, rule_id, with_for_update=for_update)
        if 0 < rule_id < 2**63
        else None
    )
    if rule is None or rule.deleted_at is not None:
        raise NotFound(f"No earning rule {rule_id}.", field="rule_id")
    return rule


def list_rules(session: Session, *, offset: int, limit: int) -> tuple[list[EarningRule], int]:
    """The rules not deleted, newest first, and their count."""
    where = EarningRule.deleted_at.is_(None)
    total = session.scalar(select(func.count()).select_from(EarningRule).where(where)) or 0
    items = session.scalars(
        select(EarningRule).where(where).order_by(EarningRule.id.desc()).offset(offset).limit(limit)
    )
    return list(items), total


def create_rule(session: Session, data: dict[str, Any], *, actor: Actor) -> EarningRule:
    """Add a rule (version 1). Raises ValidationFailed."""
    fields = {"conditions": {}, "priority": 0, "stackable": True, "active": True, **data}
    rule = EarningRule(version=1, budget_used=0, **_stored(fields))
    _check(session, rule)
    session.add(rule)
    session.flush()
    _new_version(session, rule)
    audit.record(
        session, actor, "earning_rule.create", "earning_rule", rule.id, {"name": rule.name}
    )
    return rule


def update_rule(
    session: Session, rule_id: int, changes: dict[str, Any], *, actor: Actor
) -> EarningRule:
    """Change a rule (the fields given; `conditions` is replaced whole): a new version, so past
    purchases keep what they earned. Raises NotFound, ValidationFailed."""
    rule = get_rule(session, rule_id, for_update=True)
    for key, value in _stored(changes).items():
        setattr(rule, key, value)
    _check(session, rule)
    rule.version += 1
    session.flush()
    _new_version(session, rule)
    audit.record(
        session, actor, "earning_rule.update", "earning_rule", rule.id, {"fields": sorted(changes)}
    )
    return rule


def delete_rule(session: Session, rule_id: int, *, actor: Actor) -> None:
    """Delete a rule (soft: it stops earning; its versions and past breakdowns stay).
    Raises NotFound."""
    rule = get_rule(session, rule_id, for_update=True)
    rule.deleted_at = utcnow()
    rule.active = False
    rule.version += 1
    session.flush()
    _new_version(session, rule)
    audit.record(session, actor, "earning_rule.delete", "earning_rule", rule.id, {})


def versions_of(session: Session, rule_id: int) -> list[EarningRuleVersion]:
    """Every definition a rule had, oldest first (deleted rules too). Raises NotFound."""
    versions = session.scalars(
        select(EarningRuleVersion)
        .where(EarningRuleVersion.rule_id == rule_id)
        .order_by(EarningRuleVersion.version)
    ).all()
    if not versions:
        raise NotFound(f"No earning rule {rule_id}.", field="rule_id")
    return list(versions)


def _stored(data: dict[str, Any]) -> dict[str, Any]:
    """The columns as stored: the value as exact decimal text, conditions without empty parts,
    times as ISO text."""
    out = dict(data)
    if "value" in out:
        out["value"] = str(out["value"])
    if "conditions" in out:
        conditions = {}
        for key, value in (out["conditions"] or {}).items():
            if value is None or value == []:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, list):
                value = sorted(set(value))
            conditions[key] = value
        out["conditions"] = conditions
    return out


def _check(session: Session, rule: EarningRule) -> None:
    """The rules a rule's fields must satisfy together. Raises ValidationFailed."""
    value = Decimal(rule.value)
    if rule.kind == "multiplier" and not (1 < value <= 100):
        raise ValidationFailed("A multiplier is more than 1 and at most 100.", field="value")
    if rule.kind == "bonus_points" and (value != value.to_integral_value() or value < 1):
        raise ValidationFailed("bonus_points is a whole number of points ≥ 1.", field="value")
    if rule.kind == "bonus_points":
        rule.value = str(int(value))
    if rule.budget is not None and rule.budget < rule.budget_used:
        raise ValidationFailed(
            f"The budget is below what the rule already gave ({rule.budget_used}).", field="budget"
        )
    _check_window(session, rule.conditions)
    unknown = set(rule.conditions.get("segments") or ()) - set(segments.SEGMENTS)
    if unknown:
        raise ValidationFailed(
            f"Unknown segment {sorted(unknown)[0]!r}; one of {', '.join(segments.SEGMENTS)}.",
            field="conditions.segments",
        )


def _check_window(session: Session, conditions: dict[str, Any]) -> None:
    starts, ends = _when(conditions.get("starts_at")), _when(conditions.get("ends_at"))
    if starts is None or ends is None:
        return
    zone = programme_zone(ensure_program(session))
    starts_at = starts if starts.tzinfo else starts.replace(tzinfo=zone)
    ends_at = ends if ends.tzinfo else ends.replace(tzinfo=zone)
    if ends_at <= starts_at:
        raise ValidationFailed("ends_at must be after starts_at.", field="conditions.ends_at")


def _new_version(session: Session, rule: EarningRule) -> None:
    """Record the rule's definition as this version and bump the programme's rules_version
    (the processes' caches key): to the next integer, or to the clock in milliseconds when that
    is higher, so a number is never reused for other rules (a re-created programme row)."""
    definition = {key: getattr(rule, key) for key in _DEFINITION}
    definition["deleted"] = rule.deleted_at is not None
    session.add(EarningRuleVersion(rule_id=rule.id, version=rule.version, definition=definition))
    now_ms = int(time.time() * 1000)
    program = ensure_program(session)
    session.execute(
        update(Program)
        .where(Program.id == 1)
        .values(
            rules_version=case(
                (Program.rules_version + 1 > now_ms, Program.rules_version + 1), else_=now_ms
            )
        )
        .execution_options(synchronize_session=False)
    )
    session.expire(program, ["rules_version"])


# ---------------------------------------------------------------------------------------------
# What a purchase (or a quote) earns


def earn(
    session: Session,
    program: Any,
    *,
    member_id: int,
    amount: int,
    occurred_at: datetime,
    lines: list[dict[str, Any]] | None,
    store_id: str | None,
    tier: TierView | None = None,
    lock: bool,
) -> Earning:
    """`earning.awards_for_purchase` with the programme's active rules (cached by
    `program.rules_version`), its zone and the member's segment (read only when a rule asks
    for one). When a rule with a budget would give points, the budgets are read — row-locked
    with `lock` (a purchase) — and the earning computed again with what they have left: a
    purchase never gives more than a budget holds. Every budgeted rule is locked then, in id
    order, so concurrent purchases take the locks in one order."""
    rules = active_rules(session.connection(), program.rules_version)
    segment = None
    if needs_segment(rules):
        segment = segments.segment_of(session, member_id, occurred_at.date())

    def compute(budget_left: dict[int, int] | None) -> Earning:
        return awards_for_purchase(
            program,
            amount_minor=amount,
            occurred_at=occurred_at,
            lines=lines,
            store_id=store_id,
            rules=rules,
            tier=tier,
            member_segment=segment,
            zone=programme_zone(program),
            budget_left=budget_left,
        )

    result = compute(None)
    if result.budget_use:
        with_budget = sorted(rule.id for rule in rules if rule.budget is not None)
        result = compute(budgets_left(session, with_budget, lock=lock))
    return result


def for_import(session: Session) -> tuple[Rule, ...]:
    """The active rules an import applies to its rows: not those with a budget (counted
    against exactly by live purchases only, under their row locks) — the rest apply as to a
    live purchase without lines, tier or segment."""
    program = ensure_program(session)
    rules = active_rules(session.connection(), program.rules_version)
    return tuple(rule for rule in rules if rule.budget is None)
