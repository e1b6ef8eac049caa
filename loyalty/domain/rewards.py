"""The reward catalogue: what points buy, at once, at the till or checkout."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from loyalty.domain import audit, ledger
from loyalty.domain.context import Actor
from loyalty.domain.program import get_program
from loyalty.domain.views import Annotated
from loyalty.errors import (
    DomainError,
    NotFound,
    OutOfStock,
    RewardLimitReached,
    RewardUnavailable,
    ValidationFailed,
)
from loyalty.models import Member, Redemption, Reward
from loyalty.models.types import utcnow

COUNTED_STATUSES = ("reserved", "redeemed")


def _check(reward: Reward) -> None:
    """The rules a reward's fields must satisfy together. Raises ValidationFailed."""
    if reward.kind == "percent_off" and not (reward.value and 1 <= reward.value <= 100):
        raise ValidationFailed("A percent_off reward has a value from 1 to 100.", field="value")
    if reward.kind == "amount_off" and not (reward.value and reward.value > 0):
        raise ValidationFailed(
            "An amount_off reward has a value in minor units > 0.", field="value"
        )
    if reward.kind == "free_item" and not reward.sku:
        raise ValidationFailed("A free_item reward names its sku.", field="sku")
    if (
        reward.active_from is not None
        and reward.active_until is not None
        and reward.active_from >= reward.active_until
    ):
        raise ValidationFailed("active_until must be after active_from.", field="active_until")


#: a reward's fields as the audit trail records them (before and after a change)
REWARD_FIELDS = (
    "name",
    "kind",
    "value",
    "currency",
    "sku",
    "points_cost",
    "active",
    "active_from",
    "active_until",
    "stock",
    "per_member_limit",
)


def create_reward(session: Session, data: dict[str, Any], *, actor: Actor) -> Reward:
    """Add a reward to the catalogue. An amount_off is in the programme's currency."""
    reward = Reward(active=True, **data)
    if reward.kind == "amount_off":
        reward.currency = get_program(session).currency
    _check(reward)
    session.add(reward)
    session.flush()
    audit.record(
        session,
        actor,
        "reward.create",
        "reward",
        reward.id,
        changes=audit.diff({}, audit.snapshot(reward, REWARD_FIELDS)),
    )
    return reward


def update_reward(
    session: Session, reward_id: int, changes: dict[str, Any], *, actor: Actor
) -> Reward:
    """Change a reward (only the fields given). Raises NotFound, ValidationFailed."""
    reward = get_reward(session, reward_id, for_update=True)
    before = audit.snapshot(reward, REWARD_FIELDS)
    for key, value in changes.items():
        setattr(reward, key, value)
    if reward.kind == "amount_off":
        reward.currency = reward.currency or get_program(session).currency
    else:
        reward.currency = None
    _check(reward)
    session.flush()
    audit.record(
        session,
        actor,
        "reward.update",
        "reward",
        reward.id,
        changes=audit.diff(before, audit.snapshot(reward, REWARD_FIELDS)),
    )
    return reward


def get_reward(session: Session, reward_id: int, *, for_update: bool = False) -> Reward:
    reward = session.get(Reward, reward_id, with_for_update=for_update) if reward_id > 0 else None
    if reward is None:
        raise NotFound(f"No reward {reward_id}.", field="reward_id")
    return reward


def available_now(reward: Reward, now: datetime) -> bool:
    return (
        reward.active
        and (reward.active_from is None or reward.active_from <= now)
        and (reward.active_until is None or now < reward.active_until)
    )


def _active_clause(now: datetime) -> Any:
    return and_(
        Reward.active.is_(True),
        or_(Reward.active_from.is_(None), Reward.active_from <= now),
        or_(Reward.active_until.is_(None), Reward.active_until > now),
    )


def used_counts(session: Session, member_id: int, rewards: list[Reward]) -> dict[int, int]:
    """How many reservations or redemptions the member holds (reserved or redeemed) of each of
    `rewards` that has a per-member limit (the others are not counted)."""
    limited = [r.id for r in rewards if r.per_member_limit is not None]
    if not limited:
        return {}
    rows = session.execute(
        select(Redemption.reward_id, func.count())
        .where(
            Redemption.member_id == member_id,
            Redemption.status.in_(COUNTED_STATUSES),
            Redemption.reward_id.in_(limited),
        )
        .group_by(Redemption.reward_id)
    ).all()
    return {reward_id: count for reward_id, count in rows}


def check_redeemable(
    reward: Reward, *, available: int, used: int, now: datetime, taken: int = 0
) -> None:
    """May a member with `available` points, holding `used` of this reward already, reserve it
    now? The refusals of `POST /redemptions`, in its order; the quote and the catalogue's
    `affordable` ask the same question through here. `taken`: units of it a basket takes before
    this one (they count against the member's limit and the stock).

    Raises RewardUnavailable, RewardLimitReached, InsufficientPoints, OutOfStock.
    """
    if not available_now(reward, now):
        raise RewardUnavailable(f"Reward {reward.id} is not available now.", field="reward_id")
    if reward.per_member_limit is not None and used + taken >= reward.per_member_limit:
        raise RewardLimitReached(field="reward_id")
    ledger.check_spendable(available, reward.points_cost, field="reward_id")
    if reward.stock is not None and reward.stock - taken <= 0:
        raise OutOfStock(f"Reward {reward.id} is out of stock.", field="reward_id")


def refusal(
    reward: Reward, *, available: int, used: int, now: datetime, taken: int = 0
) -> DomainError | None:
    """The error `check_redeemable` raises, or None when the reward can be reserved."""
    try:
        check_redeemable(reward, available=available, used=used, now=now, taken=taken)
    except DomainError as refused:
        return refused
    return None


def discount_for(reward: Reward, amount: int, lines: list[dict[str, Any]] | None) -> int | None:
    """What the reward takes off a basket of `amount` (minor units): an amount off (at most the
    amount), a percentage rounded down, or a free item's unit price when the basket's `lines`
    hold its sku (None when they do not)."""
    if reward.kind == "amount_off":
        return min(reward.value or 0, amount)
    if reward.kind == "percent_off":
        return amount * (reward.value or 0) // 100
    prices = [line["unit_price"] for line in lines or [] if line.get("sku") == reward.sku]
    return min(min(prices), amount) if prices else None


def available_rewards(
    session: Session, now: datetime, *, offset: int, limit: int
) -> tuple[list[Reward], int]:
    """The rewards available at `now` (active, inside their window), cheapest first, and their
    count."""
    where = _active_clause(now)
    total = session.scalar(select(func.count()).select_from(Reward).where(where)) or 0
    items = session.scalars(
        select(Reward)
        .where(where)
        .order_by(Reward.points_cost, Reward.id)
        .offset(offset)
        .limit(limit)
    )
    return list(items), total


def catalogue(
    session: Session, *, member: Member | None, offset: int, limit: int
) -> tuple[list[Annotated], int]:
    """Rewards available now, cheapest first, each with `affordable` (None without a member):
    `check_redeemable` would let the member reserve it (enough available points, in stock,
    under the reward's per-member limit)."""
    now = utcnow()
    items, total = available_rewards(session, now, offset=offset, limit=limit)
    if member is None:
        return [Annotated(r, affordable=None) for r in items], total
    used = used_counts(session, member.id, items)
    listed = [
        Annotated(
            reward,
            affordable=refusal(
                reward, available=member.available, used=used.get(reward.id, 0), now=now
            )
            is None,
        )
        for reward in items
    ]
    return listed, total
