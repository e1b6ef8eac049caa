"""Purchases and returns: what earns points, what takes them back, and the till's quote."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from loyalty.domain import audit, earning, ledger
from loyalty.domain.context import Actor
from loyalty.domain.members import get_member, resolve_member
from loyalty.domain.program import check_currency, get_program
from loyalty.domain.sql import upsert
from loyalty.errors import (
    ExternalIdConflict,
    NotFound,
    ReturnExceedsPurchase,
    ValidationFailed,
)
from loyalty.models import LedgerEntry, Member, Purchase, PurchaseLine, Return
from loyalty.models.types import utcnow

#: A till's clock may run ahead; a purchase further in the future than this is refused.
MAX_CLOCK_SKEW = timedelta(hours=24)


def _occurred_at(value: datetime | None) -> datetime:
    now = utcnow()
    if value is None:
        return now
    if value > now + MAX_CLOCK_SKEW:
        raise ValidationFailed("occurred_at lies in the future.", field="occurred_at")
    return value


def record_purchase(
    session: Session, data: dict[str, Any], *, actor: Actor
) -> tuple[Purchase, bool]:
    """Record a completed sale and post what it earns. Returns (purchase, created).

    A second post of the same `external_id` by the same client returns the first purchase
    (created = False) and earns nothing. Raises CurrencyMismatch, InvalidCardNumber, NotFound,
    CardBlocked, MemberMismatch, ValidationFailed, ExternalIdConflict.
    """
    assert actor.client_id is not None, "purchases are posted by an API client"
    program = get_program(session)
    check_currency(program, data["currency"])
    occurred_at = _occurred_at(data.get("occurred_at"))
    # Locked from here: posts for one member are serialised, so the duplicate check is exact.
    member = ledger.lock_member_for(
        session, card_number=data.get("card_number"), member_id=data.get("member_id")
    )
    lines = data.get("lines") or []
    awards = earning.awards_for_purchase(
        program,
        amount_minor=data["amount"],
        occurred_at=occurred_at,
        lines=lines,
        store_id=data.get("store_id"),
    )
    insert = (
        upsert(session, Purchase)
        .values(
            member_id=member.id,
            api_client_id=actor.client_id,
            external_id=data["external_id"],
            amount=data["amount"],
            currency=program.currency,
            occurred_at=occurred_at,
            store_id=data.get("store_id"),
            points_earned=sum(a.points for a in awards),
            returned_amount=0,
            points_reversed=0,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["api_client_id", "external_id"])
        .returning(Purchase)
    )
    purchase = session.scalars(insert).first()
    if purchase is None:
        return _existing_purchase(session, data["external_id"], member, actor), False
    set_committed_value(purchase, "member", member)  # already loaded and locked: no query
    if lines:
        session.add_all(
            PurchaseLine(purchase_id=purchase.id, line_no=i, **line)
            for i, line in enumerate(lines, start=1)
        )
    for award in awards:
        ledger.post(
            session,
            member,
            award.kind,
            award.points,
            reason=award.reason,
            actor=actor,
            purchase_id=purchase.id,
        )
    session.flush()
    return purchase, True


def _existing_purchase(
    session: Session, external_id: str, member: Member, actor: Actor
) -> Purchase:
    existing = session.scalars(
        select(Purchase).where(
            Purchase.api_client_id == actor.client_id, Purchase.external_id == external_id
        )
    ).one()
    if existing.member_id != member.id:
        raise ExternalIdConflict(
            f"external_id {external_id!r} is a purchase of another member.", field="external_id"
        )
    return existing


def get_purchase(session: Session, purchase_id: int) -> Purchase:
    """Raises NotFound."""
    purchase = session.get(Purchase, purchase_id) if 0 < purchase_id < 2**63 else None
    if purchase is None:
        raise NotFound(f"No purchase {purchase_id}.", field="purchase_id")
    return purchase


def record_return(
    session: Session, purchase_id: int, data: dict[str, Any], *, actor: Actor
) -> tuple[Return, bool]:
    """Record a (partial) refund and take back its share of the points. Returns (return, created).

    Cumulative pro rata, rounded down (see earning.reversal_for_return); may leave a debt.
    A second post of the same `external_id` returns the first. Raises NotFound,
    ReturnExceedsPurchase, ExternalIdConflict.
    """
    assert actor.client_id is not None, "returns are posted by an API client"
    purchase = get_purchase(session, purchase_id)
    member = ledger.lock_member(session, purchase.member_id)
    session.refresh(purchase)  # totals as of the lock, not as of the first read
    existing = session.scalar(
        select(Return).where(
            Return.api_client_id == actor.client_id, Return.external_id == data["external_id"]
        )
    )
    if existing is not None:
        if existing.purchase_id != purchase.id:
            raise ExternalIdConflict(
                f"external_id {data['external_id']!r} is a return of another purchase.",
                field="external_id",
            )
        return existing, False
    amount = data["amount"]
    if purchase.returned_amount + amount > purchase.amount:
        raise ReturnExceedsPurchase(
            f"{purchase.returned_amount} of {purchase.amount} already returned; "
            f"{purchase.amount - purchase.returned_amount} can still be returned.",
            field="amount",
        )
    points = earning.reversal_for_return(
        purchase.points_earned,
        purchase.amount,
        purchase.returned_amount,
        purchase.points_reversed,
        amount,
    )
    ret = Return(
        purchase=purchase,
        api_client_id=actor.client_id,
        external_id=data["external_id"],
        amount=amount,
        points_reversed=points,
        lines=data.get("lines") or [],
        occurred_at=_occurred_at(data.get("occurred_at")),
    )
    session.add(ret)
    session.flush()
    if points:
        ledger.post(
            session,
            member,
            "reverse",
            -points,
            reason="return",
            actor=actor,
            purchase_id=purchase.id,
            return_id=ret.id,
            allow_debt=True,
        )
    purchase.returned_amount += amount
    purchase.points_reversed += points
    session.flush()
    return ret, True


def quote(session: Session, data: dict[str, Any]) -> dict[str, Any]:
    """What a basket would earn, and the balance after it. Reads only; writes nothing."""
    program = get_program(session)
    check_currency(program, data["currency"])
    member = resolve_member(
        session, card_number=data.get("card_number"), member_id=data.get("member_id")
    )
    awards = earning.awards_for_purchase(
        program,
        amount_minor=data["amount"],
        occurred_at=utcnow(),
        lines=data.get("lines"),
        store_id=data.get("store_id"),
    )
    earned = sum(a.points for a in awards)
    return {
        "member_id": member.id,
        "amount": data["amount"],
        "currency": program.currency,
        "points_earned": earned,
        "awards": [{"kind": a.kind, "points": a.points, "reason": a.reason} for a in awards],
        "balance": member.balance,
        "balance_after": {
            "points": member.points + earned,
            "held": member.held,
            "available": member.available + earned,
        },
        "vouchers": [],
        "rewards": [],
    }


def adjust(
    session: Session, member_id: int, points: int, reason: str, *, actor: Actor
) -> LedgerEntry:
    """A staff correction (±points) with a reason, audit-logged with the key's name.

    Raises NotFound, InsufficientPoints (a correction never creates a debt).
    """
    member = ledger.lock_member(session, member_id)
    entry = ledger.post(
        session, member, "adjust", points, reason="staff_adjustment", note=reason, actor=actor
    )
    session.flush()
    audit.record(
        session,
        actor,
        "points.adjust",
        "member",
        member.id,
        {"points": points, "reason": reason, "ledger_entry_id": entry.id},
    )
    return entry


def list_entries(
    session: Session, member_id: int, *, offset: int, limit: int
) -> tuple[list[LedgerEntry], int]:
    """A member's ledger, newest first, and the total count. Raises NotFound."""
    get_member(session, member_id)
    where = LedgerEntry.member_id == member_id
    total = session.scalar(select(func.count()).select_from(LedgerEntry).where(where)) or 0
    items = session.scalars(
        select(LedgerEntry).where(where).order_by(LedgerEntry.id.desc()).offset(offset).limit(limit)
    ).all()
    return list(items), total
