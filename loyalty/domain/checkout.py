"""The checkout quote: what a basket would earn, which vouchers apply and what they take off,
which rewards the member can take. It reads only: nothing is recorded, reserved or used.

Every answer comes from the function the real operation goes through, so a quote never says
yes where the operation would say no: earning from `earning_rules.earn` (the one purchase
path: `earning.awards_for_purchase` with the active rules; the budgets read, not locked), a
voucher from `vouchers.get_voucher` + `vouchers.check` (the redeem endpoint and a purchase's
`voucher_codes`), a reward from `rewards.check_redeemable` (`POST /redemptions`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.domain import earning_rules, rewards, tiers, vouchers
from loyalty.domain.members import resolve_member
from loyalty.domain.program import check_currency, get_program
from loyalty.errors import DomainError, NotFound, VoucherUsed
from loyalty.models import Member, Redemption, Reward
from loyalty.models.types import utcnow

#: The catalogue a quote lists when no reward_ids are asked about.
CATALOGUE_LIMIT = 100


def quote(session: Session, data: dict[str, Any]) -> dict[str, Any]:
    """What a basket would earn, the balance now and after it, each voucher code's answer and
    the rewards. Reads only. Raises CurrencyMismatch and the member errors of `resolve_member`.
    """
    program = get_program(session)
    check_currency(program, data["currency"])
    member = resolve_member(
        session, card_number=data.get("card_number"), member_id=data.get("member_id")
    )
    now = utcnow()
    amount = data["amount"]
    earned_now = earning_rules.earn(
        session,
        program,
        member_id=member.id,
        amount=amount,
        occurred_at=now,
        lines=data.get("lines"),
        store_id=data.get("store_id"),
        tier=tiers.tier_view(program.tiers, member.tier),  # as the purchase will
        lock=False,
    )
    awards, earned = earned_now.awards, earned_now.total
    balance = _current_balance(session, member, now)
    # with a pending time, what the points earned leave after paying a debt is pending first
    # (as ledger.credit makes the purchase's lot)
    points_after = balance["points"] + earned
    pending_after = balance["pending"] + (
        max(0, min(earned, points_after)) if program.pending_days else 0
    )
    return {
        "member_id": member.id,
        "amount": amount,
        "currency": program.currency,
        "points_earned": earned,
        "awards": [{"kind": a.kind, "points": a.points, "reason": a.reason} for a in awards],
        "breakdown": earned_now.breakdown,
        "balance": balance,
        "balance_after": {
            "points": points_after,
            "held": balance["held"],
            "pending": pending_after,
            "available": points_after - balance["held"] - pending_after,
        },
        "vouchers": _voucher_answers(session, data.get("voucher_codes") or [], amount, member.id),
        "rewards": _reward_answers(session, member, balance["available"], data, now),
    }


def _current_balance(session: Session, member: Member, now: datetime) -> dict[str, int]:
    """The member's balance with reservations past their time no longer held: what any
    operation (a redemption first of all) sees once it has expired them. Read, not written."""
    overdue = session.scalar(
        select(func.coalesce(func.sum(Redemption.points), 0)).where(
            Redemption.member_id == member.id,
            Redemption.status == "reserved",
            Redemption.expires_at <= now,
        )
    )
    held = member.held - int(overdue or 0)
    pending = member.pending
    return {
        "points": member.points,
        "held": held,
        "pending": pending,
        "available": member.points - held - pending,
    }


def _refused(refusal: DomainError) -> dict[str, Any]:
    return {"code": refusal.code, "detail": refusal.detail}


def _voucher_answers(
    session: Session, codes: list[str], amount: int, member_id: int
) -> list[dict[str, Any]]:
    """Per code, in the order given: `{code, applicable, discount, refusal}`, where `refusal` is
    the error redeeming it on this basket would get now (`not_found` for an unknown code). A
    voucher named twice is refused the second time (`voucher_used`): it is used once."""
    answers: list[dict[str, Any]] = []
    seen: set[int] = set()
    for raw in codes:
        try:
            voucher = vouchers.get_voucher(session, raw)
        except NotFound as refusal:
            answers.append(
                {"code": raw, "applicable": False, "discount": None, "refusal": _refused(refusal)}
            )
            continue
        if voucher.id in seen:
            again = VoucherUsed("Named twice: a voucher is used once.", field="code")
            answer = {"applicable": False, "discount": None, "refusal": _refused(again)}
        else:
            answer = vouchers.assess(voucher, amount, member_id=member_id)
        seen.add(voucher.id)
        answers.append({"code": voucher.display_code, **answer})
    return answers


def _reward_answers(
    session: Session, member: Member, available: int, data: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """The rewards asked about in `reward_ids`, in that order and as if reserved one after the
    other (the points, limit and stock an earlier one takes count for the next), or else the
    whole available catalogue, each judged on its own."""
    reward_ids: list[int] | None = data.get("reward_ids")
    asked: list[tuple[int, Reward | None]]
    if reward_ids:
        found = session.scalars(select(Reward).where(Reward.id.in_(set(reward_ids))))
        by_id = {r.id: r for r in found}
        asked = [(reward_id, by_id.get(reward_id)) for reward_id in reward_ids]
    else:
        items, _ = rewards.available_rewards(session, now, offset=0, limit=CATALOGUE_LIMIT)
        asked = [(r.id, r) for r in items]
    used = rewards.used_counts(session, member.id, [r for _, r in asked if r is not None])
    taken: dict[int, int] = {}
    answers = []
    for reward_id, reward in asked:
        if reward is None:
            answers.append(_unknown_reward(reward_id))
            continue
        refusal = rewards.refusal(
            reward,
            available=available,
            used=used.get(reward.id, 0),
            now=now,
            taken=taken.get(reward.id, 0),
        )
        answers.append(_reward_answer(reward, refusal, data, now))
        if refusal is None and reward_ids:  # a basket: the next one finds these taken
            available -= reward.points_cost
            taken[reward.id] = taken.get(reward.id, 0) + 1
    return answers


def _unknown_reward(reward_id: int) -> dict[str, Any]:
    missing = NotFound(f"No reward {reward_id}.", field="reward_id")
    return {
        "reward_id": reward_id,
        "available": False,
        "affordable": False,
        "applicable": False,
        "points": None,
        "discount": None,
        "refusal": _refused(missing),
    }


def _reward_answer(
    reward: Reward, refusal: DomainError | None, data: dict[str, Any], now: datetime
) -> dict[str, Any]:
    applies = refusal is None
    return {
        "reward_id": reward.id,
        "name": reward.name,
        "points_cost": reward.points_cost,
        "benefit": reward.benefit,
        "available": rewards.available_now(reward, now),
        "affordable": applies,
        "applicable": applies,
        "points": reward.points_cost if applies else None,
        "discount": rewards.discount_for(reward, data["amount"], data.get("lines"))
        if applies
        else None,
        "refusal": None if refusal is None else _refused(refusal),
    }
