"""Purchases and returns: what earns points and what takes them back (the till's quote is
in checkout.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from loyalty.domain import (
    audit,
    clients,
    earning,
    earning_rules,
    ledger,
    redemptions,
    tally,
    tiers,
    vouchers,
)
from loyalty.domain.cards import normalise_card_number
from loyalty.domain.context import Actor, Limits
from loyalty.domain.members import (
    check_card_use,
    get_member,
    refuse_erased,
    require_member_ref,
)
from loyalty.domain.program import check_currency
from loyalty.domain.sql import Fast, json_param, upsert
from loyalty.errors import (
    CurrencyMismatch,
    ExternalIdConflict,
    NotFound,
    ReturnBeforePurchase,
    ReturnExceedsPurchase,
    SkuNotInPurchase,
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
    breakdown: list[dict[str, Any]] = field(default_factory=list)


_PURCHASES = cast(Table, Purchase.__table__)
_INSERT_LINES = insert(cast(Table, PurchaseLine.__table__))
_RATES = (
    Program.currency,
    Program.currency_exponent,
    Program.points_per_unit,
    Program.rounding,
    Program.come_back_policy,
    Program.points_expire_after_days,  # the terms of the purchase's lots (ledger.terms_of)
    Program.pending_days,
    Program.timezone,
    Program.rules_version,  # the key of the cached earning rules (earning_rules.active_rules)
    Program.tiers,  # the tier table and policy (tiers.Policy), and the member's tier
    Program.tier_window,
    Program.tier_downgrade,
    Program.tier_grace_days,
    Member.tier,
)
# The programme's rates and the card (or member) in one round trip (the programme is row 1);
# the member's erased_at: an erased member earns nothing.
_BY_CARD = Fast(
    select(Card.member_id, Card.status, Member.erased_at, *_RATES)
    .select_from(Card)
    .join(Member, Member.id == Card.member_id)
    .join(Program, Program.id == 1)
    .where(Card.number == bindparam("number"))
)
_BY_MEMBER = Fast(
    select(Member.id.label("member_id"), Member.erased_at, *_RATES)
    .select_from(Program)
    .outerjoin(Member, Member.id == bindparam("member_id"))
    .where(Program.id == 1)
)


class _Rates(NamedTuple):
    """The programme's columns earning needs (earning.Rates) and its come-back policy."""

    currency: str
    currency_exponent: int
    points_per_unit: int
    rounding: str
    come_back_policy: dict[str, Any] | None
    points_expire_after_days: int | None
    pending_days: int | None
    timezone: str
    rules_version: int
    tiers: list[dict[str, Any]]
    tier_window: str
    tier_downgrade: str
    tier_grace_days: int
    member_tier: str | None  # the tier the purchase earns at (held before it)


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
        Purchase.breakdown,
        Member.points,
        Member.held,
        Member.pending,
    )
    .join(Member, Member.id == Purchase.member_id)
    .where(
        Purchase.api_client_id == bindparam("client_id"),
        Purchase.external_id == bindparam("external_id"),
    )
)
_EXISTING_LINES = select(
    PurchaseLine.sku, PurchaseLine.category, PurchaseLine.quantity, PurchaseLine.unit_price
).order_by(PurchaseLine.line_no)
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
    "breakdown",
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

    Raises ValidationFailed (neither given), InvalidCardNumber, NotFound, MemberErased,
    CardBlocked, MemberMismatch.
    """
    require_member_ref(card_number, member_id)
    if card_number is None:
        assert member_id is not None
        row = _BY_MEMBER.first(conn, {"member_id": member_id})
        assert row is not None, "the programme row exists"
        if row[0] is None:
            raise NotFound(f"No member {member_id}.", field="member_id")
        refuse_erased(row[1], field="member_id")
        return member_id, _Rates(*row[2:])
    number = normalise_card_number(card_number)
    card = _BY_CARD.first(conn, {"number": number})
    if card is None:
        raise NotFound(f"No card {number}.", field="card_number")
    refuse_erased(card[2], field="card_number")
    check_card_use(number, card[1], card[0], member_id)
    return int(card[0]), _Rates(*card[3:])


_balance_of = ledger.balance_of


def record_purchase(
    session: Session, data: dict[str, Any], *, actor: Actor, limits: Limits
) -> tuple[Receipt, bool]:
    """Record a completed sale and post what it earns. Returns (receipt, created).

    The one path of every purchase: a till's request, a batch item, a Stripe payment. The member
    and the programme's rates in one query; what it earns from `earning_rules.earn` (base, tier,
    earning rules, explained in the breakdown it stores); the purchase inserted with ON CONFLICT
    DO NOTHING, so a repeated or concurrent post of the same `external_id` by the same client
    waits on the unique index, then finds the first purchase: the same fields give (first
    receipt, False) and earn nothing, other fields raise ExternalIdConflict naming them.
    `voucher_codes` are redeemed in the same transaction: one refused (used, expired, another
    member's, below its minimum spend, checked against the amount paid) refuses the whole
    purchase. An amount above `limits.max_purchase_amount` is refused, whichever way the
    purchase came. An erased member earns nothing (MemberErased), whichever way the purchase
    came. A key bound to a store posts for that store (none given: that one; another:
    StoreNotAllowed).
    Raises LimitExceeded, CurrencyMismatch, InvalidCardNumber, NotFound, MemberErased,
    CardBlocked, MemberMismatch, ValidationFailed, ExternalIdConflict, StoreNotAllowed, and the
    voucher refusals.
    """
    assert actor.client_id is not None, "purchases are posted by an API client"
    limits.check("max_purchase_amount", data["amount"], field="amount")
    conn = session.connection()
    occurred_at = _occurred_at(data.get("occurred_at"))
    member_id, rates = _member_and_rates(conn, data.get("card_number"), data.get("member_id"))
    check_currency(rates, data["currency"])
    store_id = clients.check_store(actor, data.get("store_id"))
    lines = data.get("lines") or []
    receipt = Receipt(
        id=0,
        external_id=data["external_id"],
        member_id=member_id,
        amount=data["amount"],
        currency=rates.currency,
        occurred_at=occurred_at,
        store_id=store_id,
        points_earned=0,
        balance={},
    )
    earned = _earn(session, rates, receipt, lines)
    now = utcnow()
    row = _insert_purchase(session).first(conn, _purchase_row(conn, receipt, actor, now))
    if row is None:
        return _existing_receipt(conn, receipt, lines, actor), False
    receipt.id = row[0]
    tally.note(session, tally.PURCHASES_RECORDED)
    receipt.vouchers_redeemed = _redeem_vouchers(session, receipt, data.get("voucher_codes"), actor)
    _insert_lines(conn, receipt.id, lines, earned.line_points)
    earning_rules.use_budgets(session, earned.budget_use)
    receipt.balance = _post_awards(session, receipt, earned.awards, actor, now, rates)
    if rates.come_back_policy:
        new = vouchers.come_back(
            session, member_id, receipt.id, receipt.amount, rates.come_back_policy, actor=actor
        )
        receipt.vouchers_issued = [new.issued_summary] if new is not None else []
    return receipt, True


def _earn(
    session: Session, rates: _Rates, receipt: Receipt, lines: list[dict[str, Any]]
) -> earning.Earning:
    """What the purchase earns (`earning_rules.earn`, at the tier held before it; budgets
    locked), set on the receipt."""
    earned = earning_rules.earn(
        session,
        rates,
        member_id=receipt.member_id,
        amount=receipt.amount,
        occurred_at=receipt.occurred_at,
        lines=lines,
        store_id=receipt.store_id,
        tier=tiers.tier_view(rates.tiers, rates.member_tier),
        lock=True,
    )
    receipt.points_earned, receipt.breakdown = earned.total, earned.breakdown
    return earned


def _insert_lines(
    conn: Connection, purchase_id: int, lines: list[dict[str, Any]], points: list[int]
) -> None:
    """The lines, each with the points it earned (None when the lines have no value to share
    the points by: returns of such a purchase take back pro rata)."""
    if lines:
        conn.execute(
            _INSERT_LINES,
            [
                {
                    "purchase_id": purchase_id,
                    "line_no": i,
                    "category": None,
                    **line,
                    "points": points[i - 1] if points else None,
                }
                for i, line in enumerate(lines, start=1)
            ],
        )


def _purchase_row(
    conn: Connection, receipt: Receipt, actor: Actor, now: datetime
) -> dict[str, Any]:
    return {
        "member_id": receipt.member_id,
        "api_client_id": actor.client_id,
        "external_id": receipt.external_id,
        "amount": receipt.amount,
        "currency": receipt.currency,
        "occurred_at": receipt.occurred_at,
        "store_id": receipt.store_id,
        "points_earned": receipt.points_earned,
        "returned_amount": 0,
        "points_reversed": 0,
        "breakdown": json_param(conn, receipt.breakdown),
        "created_at": now,
    }


def _post_awards(
    session: Session,
    receipt: Receipt,
    awards: list[earning.Award],
    actor: Actor,
    now: datetime,
    rates: _Rates,
) -> dict[str, int]:
    """One ledger entry (and lot) per award, all in one credit, the amount added to the
    member's gross spend in the same UPDATE; then the tier the spend reaches (raised at once).
    The member's balance after."""
    if not awards:
        after = ledger.add_spend(session, receipt.member_id, receipt.amount)
    else:
        after = ledger.credit_all(
            session,
            receipt.member_id,
            awards,
            actor=actor,
            purchase_id=receipt.id,
            now=now,
            terms=ledger.terms_of(rates),
            spend=receipt.amount,
        )
    policy = tiers.Policy.of(rates)
    tiers.after_purchase(
        session, receipt.member_id, policy, rates.member_tier, after.gross_spend, actor=actor
    )
    return after.balance


def _redeem_vouchers(
    session: Session, receipt: Receipt, codes: list[str] | None, actor: Actor
) -> list[dict[str, Any]]:
    """Redeem the vouchers used on this sale, in its transaction. Raises the voucher refusals."""
    used = []
    for code in codes or []:
        voucher, discount = vouchers.redeem(
            session,
            code,
            {
                "order_ref": receipt.external_id,
                "amount": receipt.amount,
                "currency": receipt.currency,
                "member_id": receipt.member_id,
            },
            actor=actor,
            purchase_id=receipt.id,
        )
        used.append({"code": voucher.display_code, "discount": discount})
    return used


def _line_tuples(lines: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (line["sku"], line.get("category"), line["quantity"], line.get("unit_price"))
        for line in lines
    ]


def _check_same(first: dict[str, Any], repeat: dict[str, Any], what: str, external_id: str) -> None:
    """A repeated external_id must carry the fields of the first record.

    Raises ExternalIdConflict with {field: [message]} for each field that differs.
    """
    differences = {
        name: [f"differs from the {what} first recorded with this external_id"]
        for name, value in repeat.items()
        if first[name] != value
    }
    if differences:
        raise ExternalIdConflict(
            f"external_id {external_id!r} was recorded with other {', '.join(differences)}.",
            errors=differences,
        )


def _existing_receipt(
    conn: Connection, receipt: Receipt, lines: list[dict[str, Any]], actor: Actor
) -> Receipt:
    """The purchase first recorded under this external_id, if the repeat has its fields.

    Raises ExternalIdConflict naming the fields that differ (amount, currency, member, lines).
    """
    row = _EXISTING.first(conn, {"client_id": actor.client_id, "external_id": receipt.external_id})
    assert row is not None, "ON CONFLICT found it"
    purchase_id, owner, amount, currency, occurred_at, store_id, earned, breakdown, *balance = row
    first_lines = conn.execute(_EXISTING_LINES.where(PurchaseLine.purchase_id == purchase_id))
    first = {
        "amount": amount,
        "currency": currency,
        "member_id": owner,
        "lines": [tuple(line) for line in first_lines],
    }
    repeat = {
        "amount": receipt.amount,
        "currency": receipt.currency,
        "member_id": receipt.member_id,
        "lines": _line_tuples(lines),
    }
    _check_same(first, repeat, "purchase", receipt.external_id)
    return Receipt(
        id=purchase_id,
        external_id=receipt.external_id,
        member_id=owner,
        amount=amount,
        currency=currency,
        occurred_at=occurred_at.astimezone(UTC),
        store_id=store_id,
        points_earned=earned,
        balance=_balance_of(*balance),
        breakdown=breakdown or [],
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

    Any client may record a return of any purchase (bought online, returned in a shop); the
    return is recorded under the client that sends it. Line by line where it names lines of a
    purchase whose lines carry their points, else pro rata, cumulative and rounded down (see
    _points_to_take_back); may leave a debt. Under the member's and the purchase's row
    locks, so concurrent returns of one purchase are checked one after the other: the amounts
    never add up to more than the purchase, nor the `lines` to more of a sku than it had. A
    second post of the same `external_id` with the same purchase, amount and lines returns the
    first (created = False); with others it raises ExternalIdConflict naming them.
    Raises NotFound, CurrencyMismatch, ExternalIdConflict, ValidationFailed (in the future),
    ReturnBeforePurchase, ReturnExceedsPurchase, SkuNotInPurchase, StoreNotAllowed (a key bound
    to a store, and a purchase of another store).
    """
    assert actor.client_id is not None, "returns are posted by an API client"
    member, purchase = _lock_purchase(session, purchase_id)
    clients.check_store(actor, purchase.store_id)  # a bound key returns its store's purchases
    _check_return_currency(purchase, data.get("currency"))
    existing = session.scalar(
        select(Return).where(
            Return.api_client_id == actor.client_id, Return.external_id == data["external_id"]
        )
    )
    if existing is not None:
        return _same_return(existing, purchase.id, data), False
    occurred_at = _return_occurred_at(purchase, data.get("occurred_at"))
    amount = data["amount"]
    if purchase.returned_amount + amount > purchase.amount:
        raise ReturnExceedsPurchase(
            f"{purchase.returned_amount} of {purchase.amount} already returned; "
            f"{purchase.amount - purchase.returned_amount} can still be returned.",
            field="amount",
        )
    lines = data.get("lines") or []
    _check_return_lines(session, purchase.id, lines)
    points = _points_to_take_back(session, purchase, amount, lines)
    ret = Return(
        purchase=purchase,
        api_client_id=actor.client_id,
        external_id=data["external_id"],
        amount=amount,
        points_reversed=points,
        lines=lines,
        occurred_at=occurred_at,
    )
    session.add(ret)
    session.flush()
    _take_back(session, member, purchase, ret, actor)
    tiers.after_return(session, member, actor=actor)  # `immediate`: the tier may go down
    return ret, True


def _points_to_take_back(
    session: Session, purchase: Purchase, amount: int, lines: list[dict[str, Any]]
) -> int:
    """What a return takes back: line by line (`earning.reversal_for_lines`) when it names lines
    and the purchase's lines carry their points; else pro rata to the amount
    (`earning.reversal_for_return`). Never more than the purchase earned."""
    if lines:
        bought = session.execute(
            select(PurchaseLine.sku, PurchaseLine.quantity, PurchaseLine.points).where(
                PurchaseLine.purchase_id == purchase.id
            )
        ).all()
        if bought and all(row.points is not None for row in bought):
            earlier = session.scalars(select(Return.lines).where(Return.purchase_id == purchase.id))
            return earning.reversal_for_lines(
                [(row.sku, row.quantity, int(row.points)) for row in bought],
                [line for returned in earlier for line in returned or []],
                lines,
                purchase.points_earned,
                purchase.points_reversed,
            )
    return earning.reversal_for_return(
        purchase.points_earned,
        purchase.amount,
        purchase.returned_amount,
        purchase.points_reversed,
        amount,
    )


def _lock_purchase(session: Session, purchase_id: int) -> tuple[Member, Purchase]:
    """The purchase's member and the purchase, both row-locked (member first, as every writer
    of points locks it), the purchase read after the locks. The purchase's lock is FOR NO KEY
    UPDATE: it serialises returns of this purchase without blocking rows that merely refer to
    it. Raises NotFound."""
    member_id = get_purchase(session, purchase_id).member_id
    member = ledger.lock_member(session, member_id)
    purchase = session.get(
        Purchase, purchase_id, with_for_update={"key_share": True}, populate_existing=True
    )
    assert purchase is not None, "purchases are never deleted"
    return member, purchase


def _check_return_currency(purchase: Purchase, currency: str | None) -> None:
    """A return may state its currency: then it must be the purchase's. Raises CurrencyMismatch."""
    if currency is not None and currency.upper() != purchase.currency:
        raise CurrencyMismatch(
            f"The purchase was paid in {purchase.currency}, not {currency}.", field="currency"
        )


def _return_occurred_at(purchase: Purchase, value: datetime | None) -> datetime:
    """When the return happened: as given (not in the future, not before the purchase), or now;
    a purchase dated ahead of this server's clock (a till's clock may run ahead) makes the
    default the purchase's time. Raises ValidationFailed, ReturnBeforePurchase."""
    if value is None:
        return max(utcnow(), purchase.occurred_at)
    at = _occurred_at(value)
    if at < purchase.occurred_at:
        raise ReturnBeforePurchase(
            f"occurred_at {at.isoformat()} is before the purchase "
            f"({purchase.occurred_at.isoformat()}).",
            field="occurred_at",
        )
    return at


def _check_return_lines(session: Session, purchase_id: int, lines: list[dict[str, Any]]) -> None:
    """Each return line names a sku of the purchase's lines, and the quantities of a sku returned
    (this return and the earlier ones together) stay within what the purchase had of it.

    Raises SkuNotInPurchase (`lines.N.sku`) or else ReturnExceedsPurchase (`lines.N.quantity`),
    naming every line at fault.
    """
    if not lines:
        return
    left: Counter[str] = Counter()
    for sku, quantity in session.execute(
        select(PurchaseLine.sku, PurchaseLine.quantity).where(
            PurchaseLine.purchase_id == purchase_id
        )
    ):
        left[sku] += quantity
    bought = set(left)
    for earlier in session.scalars(select(Return.lines).where(Return.purchase_id == purchase_id)):
        for line in earlier or []:
            left[line["sku"]] -= line["quantity"]
    unknown: dict[str, list[str]] = {}
    over: dict[str, list[str]] = {}
    for i, line in enumerate(lines):
        sku = line["sku"]
        if sku not in bought:
            unknown[f"lines.{i}.sku"] = [f"The purchase has no line with sku {sku!r}."]
            continue
        if line["quantity"] > left[sku]:
            over[f"lines.{i}.quantity"] = [
                f"{max(left[sku], 0)} of sku {sku!r} left to return, not {line['quantity']}."
            ]
        left[sku] -= line["quantity"]
    if unknown:
        raise SkuNotInPurchase(
            "A return line names a sku the purchase did not have.", errors=unknown
        )
    if over:
        raise ReturnExceedsPurchase(
            "A return line returns more of a sku than the purchase has left to return.",
            errors=over,
        )


def _same_return(existing: Return, purchase_id: int, data: dict[str, Any]) -> Return:
    """The return first recorded under this external_id, if the repeat has its fields.

    Raises ExternalIdConflict naming the fields that differ (purchase, amount, lines).
    """
    first = {
        "purchase_id": existing.purchase_id,
        "amount": existing.amount,
        "lines": _line_tuples(existing.lines),
    }
    repeat = {
        "purchase_id": purchase_id,
        "amount": data["amount"],
        "lines": _line_tuples(data.get("lines") or []),
    }
    _check_same(first, repeat, "return", data["external_id"])
    return existing


def _take_back(
    session: Session, member: Member, purchase: Purchase, ret: Return, actor: Actor
) -> None:
    """Post the return's reversal and update the purchase's totals; a full return also gives
    back the points of rewards redeemed on the purchase."""
    if ret.points_reversed:
        ledger.post(
            session,
            member,
            "reverse",
            -ret.points_reversed,
            reason="return",
            actor=actor,
            purchase_id=purchase.id,
            return_id=ret.id,
            allow_debt=True,
        )
    purchase.returned_amount += ret.amount
    purchase.points_reversed += ret.points_reversed
    if purchase.returned_amount == purchase.amount:
        redemptions.give_back_for_full_return(session, member, purchase.id, ret.id, actor=actor)
    session.flush()


def adjust(
    session: Session, member_id: int, points: int, reason: str, *, actor: Actor, limits: Limits
) -> LedgerEntry:
    """A staff correction (±points) with a reason, audit-logged with the key's name.

    Raises LimitExceeded (more than `limits.max_adjustment_points` either way), NotFound,
    InsufficientPoints (a correction never creates a debt), MemberErased.
    """
    limits.check("max_adjustment_points", abs(points), field="points")
    member = ledger.lock_member(session, member_id)
    refuse_erased(member.erased_at, field="member_id")
    redemptions.release_expired_for(session, member)  # overdue reservations no longer hold points
    ledger.settle_due(session, member)  # nor are pending points whose time is over; lapsed go
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
        {"points": points, "ledger_entry_id": entry.id},
        changes={"points": (entry.balance_after - points, entry.balance_after)},
        reason=reason,
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
