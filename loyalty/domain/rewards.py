"""The reward catalogue: what points buy, at once, at the till or checkout."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from loyalty.domain import audit
from loyalty.domain.context import Actor
from loyalty.domain.program import get_program
from loyalty.domain.views import Annotated
from loyalty.errors import NotFound, ValidationFailed
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


def create_reward(session: Session, data: dict[str, Any], *, actor: Actor) -> Reward:
    """Add a reward to the catalogue. An amount_off is in the programme's currency."""
    reward = Reward(active=True, **data)
    if reward.kind == "amount_off":
        reward.currency = get_program(session).currency
    _check(reward)
    session.add(reward)
    session.flush()
    audit.record(session, actor, "reward.create", "reward", reward.id, {"name": reward.name})
    return reward


def update_reward(
    session: Session, reward_id: int, changes: dict[str, Any], *, actor: Actor
) -> Reward:
    """Change a reward (only the fields given). Raises NotFound, ValidationFailed."""
    reward = get_reward(session, reward_id, for_update=True)
    for key, value in changes.items():
        setattr(reward, key, value)
    if reward.kind == "amount_off":
        reward.currency = reward.currency or get_program(session).currency
    else:
        reward.currency = None
    _check(reward)
    session.flush()
    audit.record(session, actor, "reward.update", "reward", reward.id, {"fields": sorted(changes)})
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


def catalogue(
    session: Session, *, member: Member | None, offset: int, limit: int
) -> tuple[list[Annotated], int]:
    """Rewards available now, cheapest first, each with `affordable`: with a member, enough
    available points, in stock, and under the reward's per-member limit (None without one)."""
    now = utcnow()
    where = _active_clause(now)
    total = session.scalar(select(func.count()).select_from(Reward).where(where)) or 0
    items = list(
        session.scalars(
            select(Reward)
            .where(where)
            .order_by(Reward.points_cost, Reward.id)
            .offset(offset)
            .limit(limit)
        )
    )
    if member is None:
        return [Annotated(r, affordable=None) for r in items], total
    used = dict(
        session.execute(
            select(Redemption.reward_id, func.count())
            .where(
                Redemption.member_id == member.id,
                Redemption.status.in_(COUNTED_STATUSES),
                Redemption.reward_id.in_([r.id for r in items]),
            )
            .group_by(Redemption.reward_id)
        ).all()
    )
    listed = [
        Annotated(
            reward,
            affordable=member.available >= reward.points_cost
            and (reward.stock is None or reward.stock > 0)
            and (
                reward.per_member_limit is None or used.get(reward.id, 0) < reward.per_member_limit
            ),
        )
        for reward in items
    ]
    return listed, total
