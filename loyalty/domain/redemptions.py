"""Redemptions: reserve points for a reward, then redeem, release, or let them expire.

    reserved ─confirm→ redeemed      reserved ─cancel→ released      reserved ─time→ expired

Every transition happens once, under the member's row lock; points move only through
ledger.hold / ledger.release / ledger.settle. Expiry is applied lazily, whenever the member or the
redemption is touched, and by `flask loyalty release-expired` for the rest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.domain import clients, ledger
from loyalty.domain.context import Actor
from loyalty.domain.program import get_program
from loyalty.domain.rewards import check_redeemable, get_reward, used_counts
from loyalty.errors import (
    MemberMismatch,
    NotFound,
    OutOfStock,
    RedemptionAlreadyRedeemed,
    RedemptionNotReserved,
    ValidationFailed,
)
from loyalty.models import Member, Purchase, Redemption, Reward
from loyalty.models.types import utcnow


def _restock(session: Session, reward_id: int) -> None:
    session.execute(
        update(Reward)
        .where(Reward.id == reward_id, Reward.stock.is_not(None))
        .values(stock=Reward.stock + 1)
    )


def _expire(session: Session, member: Member, redemption: Redemption, now: datetime) -> None:
    ledger.release(member, redemption.points)
    redemption.status = "expired"
    redemption.released_at = now
    _restock(session, redemption.reward_id)


def release_expired_for(session: Session, member: Member, now: datetime | None = None) -> int:
    """Expire the member's reservations past their time. `member` must be locked."""
    now = now or utcnow()
    stale = session.scalars(
        select(Redemption).where(
            Redemption.member_id == member.id,
            Redemption.status == "reserved",
            Redemption.expires_at <= now,
        )
    ).all()
    for redemption in stale:
        _expire(session, member, redemption, now)
    if stale:
        session.flush()
    return len(stale)


def has_expired_reservations(session: Session, member_id: int) -> bool:
    """A cheap read: does touching this member have expiries to apply?"""
    return (
        session.scalar(
            select(Redemption.id)
            .where(
                Redemption.member_id == member_id,
                Redemption.status == "reserved",
                Redemption.expires_at <= utcnow(),
            )
            .limit(1)
        )
        is not None
    )


def release_expired(session: Session, *, batch: int = 500) -> int:
    """Expire up to `batch` overdue reservations of any member (the CLI loops on this)."""
    now = utcnow()
    member_ids = session.scalars(
        select(Redemption.member_id)
        .where(Redemption.status == "reserved", Redemption.expires_at <= now)
        .distinct()
        .limit(batch)
    ).all()
    count = 0
    for member_id in member_ids:
        member = ledger.lock_member(session, member_id)
        count += release_expired_for(session, member, now)
    return count


def reserve(session: Session, data: dict[str, Any], *, actor: Actor) -> Redemption:
    """Reserve a reward's points for the member (or redeem at once with `instant`).

    Raises NotFound, CardBlocked, InvalidCardNumber, MemberMismatch, RewardUnavailable,
    RewardLimitReached, InsufficientPoints, OutOfStock.
    """
    assert actor.client_id is not None
    member = ledger.lock_member_for(
        session, card_number=data.get("card_number"), member_id=data.get("member_id")
    )
    now = utcnow()
    release_expired_for(session, member, now)
    ledger.settle_due(session, member, now)  # pending points due released, lapsed expired
    reward = get_reward(session, data["reward_id"])
    used = used_counts(session, member.id, [reward]).get(reward.id, 0)
    check_redeemable(reward, available=member.available, used=used, now=now)
    ledger.hold(member, reward.points_cost)
    if reward.stock is not None:  # the atomic take: of two tills after the last one, one wins
        taken = session.execute(
            update(Reward)
            .where(Reward.id == reward.id, Reward.stock > 0)
            .values(stock=Reward.stock - 1)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise OutOfStock(f"Reward {reward.id} is out of stock.", field="reward_id")
    minutes = get_program(session).reservation_minutes
    redemption = Redemption(
        member_id=member.id,
        reward_id=reward.id,
        status="reserved",
        points=reward.points_cost,
        benefit=reward.benefit,
        order_ref=data.get("order_ref"),
        api_client_id=actor.client_id,
        expires_at=now + timedelta(minutes=minutes),
        created_at=now,
    )
    session.add(redemption)
    session.flush()
    if data.get("instant"):
        _settle(session, member, redemption, None, actor, now)
    session.refresh(reward)
    return redemption


def _settle(
    session: Session,
    member: Member,
    redemption: Redemption,
    purchase: Purchase | None,
    actor: Actor,
    now: datetime,
) -> None:
    ledger.settle(session, member, redemption.points, redemption_id=redemption.id, actor=actor)
    redemption.status = "redeemed"
    redemption.redeemed_at = now
    if purchase is not None:
        redemption.purchase_id = purchase.id
    session.flush()


def _locked(session: Session, redemption_id: int, actor: Actor) -> tuple[Member, Redemption]:
    """The redemption and its member, the member locked, the redemption read after the lock.

    Raises NotFound (also for another client's redemption).
    """
    first = get_redemption(session, redemption_id, actor=actor)
    member = ledger.lock_member(session, first.member_id)
    session.refresh(first)
    return member, first


def confirm(
    session: Session, redemption_id: int, data: dict[str, Any], *, actor: Actor
) -> Redemption:
    """reserved → redeemed: the points leave the account (a `redeem` entry).

    Only the client that reserved it (or an admin) may. The purchase it is linked to, if the
    body names one, is found by `_purchase_to_link`. Confirming a redeemed one again answers with
    it. Raises NotFound (also for another client's redemption), RedemptionNotReserved (released or
    expired), ValidationFailed, MemberMismatch (the purchase is another member's).
    """
    member, redemption = _locked(session, redemption_id, actor)
    now = utcnow()
    if redemption.status == "reserved" and redemption.expires_at <= now:
        _expire(session, member, redemption, now)
        session.flush()
    if redemption.status == "redeemed":
        return redemption
    if redemption.status != "reserved":
        raise RedemptionNotReserved(
            f"Redemption {redemption.id} is {redemption.status}.", field="redemption_id"
        )
    purchase = _purchase_to_link(session, data, actor)
    if purchase is not None and purchase.member_id != member.id:
        field = "purchase_id" if data.get("purchase_id") is not None else "purchase_external_id"
        raise MemberMismatch("The purchase is another member's.", field=field)
    _settle(session, member, redemption, purchase, actor, now)
    return redemption


def _purchase_to_link(session: Session, data: dict[str, Any], actor: Actor) -> Purchase | None:
    """The purchase a confirm names: `purchase_external_id` is this client's purchase of that
    external_id, else the one a Stripe webhook recorded for that payment (its PaymentIntent id);
    `purchase_id` is a purchase this client or a Stripe webhook recorded (an admin: any). Both
    given: they must name the same purchase.

    Raises NotFound, ValidationFailed (they name different purchases).
    """
    external_id, purchase_id = data.get("purchase_external_id"), data.get("purchase_id")
    if external_id is None and purchase_id is None:
        return None
    stripe = clients.system_client_id(session, clients.STRIPE)
    sources = [c for c in (actor.client_id, stripe) if c is not None]
    by_external_id = by_id = None
    if external_id is not None:
        by_external_id = _first_purchase_of(session, sources, external_id)
        if by_external_id is None:
            raise NotFound(
                f"No purchase {external_id!r} from this client or from Stripe.",
                field="purchase_external_id",
            )
    if purchase_id is not None:
        by_id = session.get(Purchase, purchase_id)
        if by_id is None or not (actor.admin or by_id.api_client_id in sources):
            raise NotFound(f"No purchase {purchase_id}.", field="purchase_id")
    if by_external_id is not None and by_id is not None and by_external_id.id != by_id.id:
        raise ValidationFailed(
            "purchase_id and purchase_external_id name different purchases.", field="purchase_id"
        )
    return by_id or by_external_id


def _first_purchase_of(session: Session, sources: list[int], external_id: str) -> Purchase | None:
    """The purchase of this external_id recorded by the first of `sources` that has one."""
    for client_id in sources:
        purchase = session.scalar(
            select(Purchase).where(
                Purchase.api_client_id == client_id, Purchase.external_id == external_id
            )
        )
        if purchase is not None:
            return purchase
    return None


def cancel(session: Session, redemption_id: int, *, actor: Actor) -> Redemption:
    """reserved → released: the points are available again, the stock comes back.

    Only the client that reserved it (or an admin) may. Cancelling a released or expired one
    answers with it. Raises NotFound (also for another client's redemption),
    RedemptionAlreadyRedeemed.
    """
    member, redemption = _locked(session, redemption_id, actor)
    now = utcnow()
    if redemption.status == "redeemed":
        raise RedemptionAlreadyRedeemed(field="redemption_id")
    if redemption.status == "reserved":
        if redemption.expires_at <= now:
            _expire(session, member, redemption, now)
        else:
            ledger.release(member, redemption.points)
            redemption.status = "released"
            redemption.released_at = now
            _restock(session, redemption.reward_id)
        session.flush()
    return redemption


def get_redemption(session: Session, redemption_id: int, *, actor: Actor) -> Redemption:
    """The redemption, if `actor` made it (or is an admin): a reservation belongs to the client
    that made it. Raises NotFound, for another client's redemption too (so it is not told that
    one exists)."""
    redemption = session.get(Redemption, redemption_id) if 0 < redemption_id < 2**63 else None
    if redemption is None or not actor.owns(redemption.api_client_id):
        raise NotFound(f"No redemption {redemption_id}.", field="redemption_id")
    return redemption


def expire_due(session: Session, member_id: int) -> int:
    """Lock the member and expire their overdue reservations (for reads that must show them)."""
    return release_expired_for(session, ledger.lock_member(session, member_id))


def give_back_for_full_return(
    session: Session, member: Member, purchase_id: int, return_id: int, *, actor: Actor
) -> int:
    """A fully returned purchase gives back the points of rewards redeemed on it, once each."""
    redeemed = session.scalars(
        select(Redemption).where(
            Redemption.purchase_id == purchase_id,
            Redemption.status == "redeemed",
            Redemption.points_returned_at.is_(None),
        )
    ).all()
    for redemption in redeemed:
        ledger.post(
            session,
            member,
            "reverse",
            redemption.points,
            reason="reward_returned",
            actor=actor,
            purchase_id=purchase_id,
            return_id=return_id,
            redemption_id=redemption.id,
        )
        redemption.points_returned_at = utcnow()
    return sum(r.points for r in redeemed)
