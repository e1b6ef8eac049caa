"""Purchases and returns: what earns points, what takes them back, and the till's quote."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from loyalty.domain import audit, earning, ledger, redemptions, rewards, vouchers
from loyalty.domain.cards import normalise_card_number
from loyalty.domain.context import Actor
from loyalty.domain.members import (
    check_card_use,
    get_member,
    require_member_ref,
    resolve_member,
)
from loyalty.domain.program import check_currency, get_program
from loyalty.domain.sql import Fast, upsert
from loyalty.errors import (
    ExternalIdConflict,
    NotFound,
    ReturnExceedsPurchase,
    ValidationFailed,
)
from loyalty.models import Card, LedgerEntry, Member, Program, Purchase, PurchaseLine, Return
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


@dataclass
class Receipt:
    """What a till gets back for a purchase (new or already recorded)."""

    id: int
    external_id: str
    member_id: int
    amount: int
    currency: str
    occurred_at: datetime
    store_id: str | None
    points_earned: int
    balance: dict[str, int]
    vouchers_issued: list[dict[str, Any]] = field(default_factory=list)
    vouchers_redeemed: list[dict[str, Any]] = field(default_factory=list)


_PURCHASES = cast(Table, Purchase.__table__)
_INSERT_LINES = insert(cast(Table, PurchaseLine.__table__))
_RATES = (
    Program.currency,
    Program.currency_exponent,
    Program.points_per_unit,
    Program.rounding,
    Program.come_back_policy,
)
# The programme's rates and the card in one round trip (the programme is always row 1).
_BY_CARD = Fast(
    select(Card.member_id, Card.status, *_RATES)
    .select_from(Card)
    .join(Program, Program.id == 1)
    .where(Card.number == bindparam("number"))
)
_BY_MEMBER = Fast(
    select(Member.id.label("member_id"), *_RATES)
    .select_from(Program)
    .outerjoin(Member, Member.id == bindparam("member_id"))
    .where(Program.id == 1)
)
_BALANCE = Fast(select(Member.points, Member.held).where(Member.id == bindparam("member_id")))


class _Rates(NamedTuple):
    """The programme's columns earning needs (earning.Rates) and its come-back policy."""

    currency: str
    currency_exponent: int
    points_per_unit: int
    rounding: str
    come_back_policy: dict[str, Any] | None


# A repeated purchase: the first one and the member's balance now, in one query.
_EXISTING = Fast(
    select(
        Purchase.id,
        Purchase.member_id,
        Purchase.amount,
        Purchase.currency,
        Purchase.occurred_at,
        Purchase.store_id,
        Purchase.points_earned,
        Member.points,
        Member.held,
    )
    .join(Member, Member.id == Purchase.member_id)
    .where(
        Purchase.api_client_id == bindparam("client_id"),
        Purchase.external_id == bindparam("external_id"),
    )
)
_PURCHASE_COLUMNS = (
    "member_id",
    "api_client_id",
    "external_id",
    "amount",
    "currency",
    "occurred_at",
    "store_id",
    "points_earned",
    "returned_amount",
    "points_reversed",
    "created_at",
)
_INSERT_PURCHASE: dict[str, Fast] = {}


def _insert_purchase(session: Session) -> Fast:
    """INSERT … ON CONFLICT (client, external_id) DO NOTHING RETURNING id, once per dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _INSERT_PURCHASE.get(dialect)
    if stmt is None:
        stmt = (
            upsert(session, _PURCHASES)
            .values({c: bindparam(c) for c in _PURCHASE_COLUMNS})
            .on_conflict_do_nothing(index_elements=["api_client_id", "external_id"])
            .returning(_PURCHASES.c.id)
        )
        stmt = _INSERT_PURCHASE[dialect] = Fast(stmt)
    return stmt


def _member_and_rates(
    conn: Connection, card_number: str | None, member_id: int | None
) -> tuple[int, _Rates]:
    """The member a body names and the programme's rates, in one query.

    Raises ValidationFailed (neither given), InvalidCardNumber, NotFound, CardBlocked,
    MemberMismatch.
    """
    require_member_ref(card_number, member_id)
    if card_number is None:
        assert member_id is not None
        row = _BY_MEMBER.first(conn, {"member_id": member_id})
        assert row is not None, "the programme row exists"
        if row[0] is None:
            raise NotFound(f"No member {member_id}.", field="member_id")
        return member_id, _Rates(*row[1:])
    number = normalise_card_number(card_number)
    card = _BY_CARD.first(conn, {"number": number})
    if card is None:
        raise NotFound(f"No card {number}.", field="card_number")
    check_card_use(number, card[1], card[0], member_id)
    return int(card[0]), _Rates(*card[2:])


def _balance_of(points: int, held: int) -> dict[str, int]:
    return {"points": points, "held": held, "available": points - held}


def _balance(conn: Connection, member_id: int) -> dict[str, int]:
    row = _BALANCE.first(conn, {"member_id": member_id})
    assert row is not None, "the member exists"
    return _balance_of(*row)


def record_purchase(
    session: Session, data: dict[str, Any], *, actor: Actor
) -> tuple[Receipt, bool]:
    """Record a completed sale and post what it earns. Returns (receipt, created).

    The hot path of the service, with statements built once (sql.Fast: straight on psycopg on
    PostgreSQL): programme and card in one query; the purchase inserted with ON CONFLICT DO
    NOTHING (a concurrent or repeated post of the same `external_id` by the same client waits on
    the unique index, then gets the first purchase, created = False, and earns nothing); the
    points credited by ledger.credit (UPDATE … RETURNING + one entry). On PostgreSQL the insert
    and the first award are one statement (ledger.insert_purchase_with_credit).
    `voucher_codes` are redeemed in the same transaction: one refused (used, expired, another
    member's, below its minimum spend, which is checked against the amount paid) refuses the
    whole purchase.
    Raises CurrencyMismatch, InvalidCardNumber, NotFound, CardBlocked, MemberMismatch,
    ValidationFailed, ExternalIdConflict, and the voucher refusals.
    """
    assert actor.client_id is not None, "purchases are posted by an API client"
    conn = session.connection()
    occurred_at = _occurred_at(data.get("occurred_at"))
    member_id, rates = _member_and_rates(conn, data.get("card_number"), data.get("member_id"))
    check_currency(rates, data["currency"])
    lines = data.get("lines") or []
    awards = earning.awards_for_purchase(
        rates,
        amount_minor=data["amount"],
        occurred_at=occurred_at,
        lines=lines,
        store_id=data.get("store_id"),
    )
    now = utcnow()
    earned = sum(a.points for a in awards)
    values = {
        "member_id": member_id,
        "api_client_id": actor.client_id,
        "external_id": data["external_id"],
        "amount": data["amount"],
        "currency": rates.currency,
        "occurred_at": occurred_at,
        "store_id": data.get("store_id"),
        "points_earned": earned,
    }
    balance = None
    to_credit = awards
    if awards and conn.dialect.name == "postgresql":
        # the purchase and its first award in one round trip
        first = awards[0]
        done = ledger.insert_purchase_with_credit(
            session, values, first.kind, first.points, reason=first.reason, actor=actor, now=now
        )
        purchase_id = None
        if done is not None:
            purchase_id, points, held = done
            balance = _balance_of(points, held)
        to_credit = awards[1:]
    else:
        row = _insert_purchase(session).first(
            conn, {**values, "returned_amount": 0, "points_reversed": 0, "created_at": now}
        )
        purchase_id = None if row is None else row[0]
    if purchase_id is None:
        return _existing_receipt(conn, data["external_id"], member_id, actor), False
    used = []
    if data.get("voucher_codes"):
        for code in data["voucher_codes"]:
            voucher, discount = vouchers.redeem(
                session,
                code,
                {
                    "order_ref": data["external_id"],
                    "amount": data["amount"],
                    "currency": data["currency"],
                    "member_id": member_id,
                },
                actor=actor,
                purchase_id=purchase_id,
            )
            used.append({"code": voucher.display_code, "discount": discount})
    if lines:
        conn.execute(
            _INSERT_LINES,
            [
                {"purchase_id": purchase_id, "line_no": i, "category": None, **line}
                for i, line in enumerate(lines, start=1)
            ],
        )
    for award in to_credit:
        points, held = ledger.credit(
            session,
            member_id,
            award.kind,
            award.points,
            reason=award.reason,
            actor=actor,
            purchase_id=purchase_id,
            now=now,
        )
        balance = _balance_of(points, held)
    issued = []
    if rates.come_back_policy:
        new = vouchers.come_back(
            session, member_id, purchase_id, data["amount"], rates.come_back_policy, actor=actor
        )
        issued = [new] if new is not None else []
    receipt = Receipt(
        id=purchase_id,
        external_id=data["external_id"],
        member_id=member_id,
        amount=data["amount"],
        currency=rates.currency,
        occurred_at=occurred_at,
        store_id=data.get("store_id"),
        points_earned=earned,
        balance=balance or _balance(conn, member_id),
        vouchers_issued=[v.issued_summary for v in issued],
        vouchers_redeemed=used,
    )
    return receipt, True


def _existing_receipt(conn: Connection, external_id: str, member_id: int, actor: Actor) -> Receipt:
    row = _EXISTING.first(conn, {"client_id": actor.client_id, "external_id": external_id})
    assert row is not None, "ON CONFLICT found it"
    purchase_id, owner, amount, currency, occurred_at, store_id, earned, points, held = row
    if owner != member_id:
        raise ExternalIdConflict(
            f"external_id {external_id!r} is a purchase of another member.", field="external_id"
        )
    return Receipt(
        id=purchase_id,
        external_id=external_id,
        member_id=owner,
        amount=amount,
        currency=currency,
        occurred_at=occurred_at.astimezone(UTC),
        store_id=store_id,
        points_earned=earned,
        balance=_balance_of(points, held),
    )


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
    if purchase.returned_amount == purchase.amount:
        redemptions.give_back_for_full_return(session, member, purchase.id, ret.id, actor=actor)
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
        "rewards": _quote_rewards(session, member, data.get("reward_ids")),
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
    }


def _quote_rewards(
    session: Session, member: Member, reward_ids: list[int] | None
) -> list[dict[str, Any]]:
    """The rewards asked about (or the whole active catalogue, up to 100), each with whether
    the member can redeem it now. An unknown or inactive one asked about reads unavailable."""
    items, _ = rewards.catalogue(session, member=member, offset=0, limit=100)
    by_id = {r.id: r for r in items}
    if not reward_ids:
        return [_reward_line(r) for r in items]
    out = []
    for reward_id in reward_ids:
        reward = by_id.get(reward_id)
        if reward is None:
            out.append({"reward_id": reward_id, "available": False, "affordable": False})
        else:
            out.append(_reward_line(reward))
    return out


def _reward_line(reward: Any) -> dict[str, Any]:
    return {
        "reward_id": reward.id,
        "name": reward.name,
        "points_cost": reward.points_cost,
        "benefit": reward.benefit,
        "available": True,
        "affordable": bool(reward.affordable),
    }


def adjust(
    session: Session, member_id: int, points: int, reason: str, *, actor: Actor
) -> LedgerEntry:
    """A staff correction (±points) with a reason, audit-logged with the key's name.

    Raises NotFound, InsufficientPoints (a correction never creates a debt).
    """
    member = ledger.lock_member(session, member_id)
    redemptions.release_expired_for(session, member)  # overdue reservations no longer hold points
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
