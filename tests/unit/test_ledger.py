"""The ledger rules, at the domain layer, on the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from loyalty.domain import checkout, ledger, members, program, purchases
from loyalty.domain.context import Actor, Limits
from loyalty.errors import (
    CardBlocked,
    CurrencyMismatch,
    ExternalIdConflict,
    InsufficientPoints,
    MemberMismatch,
    ReturnExceedsPurchase,
    ValidationFailed,
)
from loyalty.models import LedgerEntry, Member, Purchase
from loyalty.models.types import utcnow
from tests import factories

LIMITS = Limits()  # the default ceilings


def buy(session, till, member, amount, external_id=None, **extra):
    data = {
        "external_id": external_id or f"sale-{factories.next_id()}",
        "member_id": member.id,
        "amount": amount,
        "currency": "EUR",
        **extra,
    }
    return purchases.record_purchase(session, data, actor=till, limits=LIMITS)


def give_back(session, till, purchase, amount, external_id=None):
    data = {"external_id": external_id or f"ret-{factories.next_id()}", "amount": amount}
    return purchases.record_return(session, purchase.id, data, actor=till)


def entries(session, member) -> list[LedgerEntry]:
    return list(
        session.scalars(
            select(LedgerEntry).where(LedgerEntry.member_id == member.id).order_by(LedgerEntry.id)
        )
    )


def test_a_purchase_earns_once_with_an_entry_and_balance_after(session, till) -> None:
    m = factories.member(session)
    p, created = buy(session, till, m, 2599, external_id="sale-1")
    assert created and p.points_earned == 25
    assert m.balance == {"points": 25, "held": 0, "pending": 0, "available": 25}
    [e] = entries(session, m)
    assert (e.kind, e.points, e.balance_after, e.purchase_id, e.actor) == (
        "earn",
        25,
        25,
        p.id,
        "till",
    )
    again, created = buy(session, till, m, 2599, external_id="sale-1")
    assert not created and again.id == p.id
    assert m.points == 25 and len(entries(session, m)) == 1


def test_the_same_external_id_for_another_member_is_a_conflict(session, till) -> None:
    a, b = factories.member(session), factories.member(session)
    buy(session, till, a, 100, external_id="sale-1")
    with pytest.raises(ExternalIdConflict):
        buy(session, till, b, 100, external_id="sale-1")


def test_external_ids_are_per_client(session, till) -> None:
    shop = factories.actor(session, ("webshop",), name="shop")
    m = factories.member(session)
    buy(session, till, m, 1000, external_id="order-1")
    _, created = purchases.record_purchase(
        session,
        {"external_id": "order-1", "member_id": m.id, "amount": 1000, "currency": "EUR"},
        actor=shop,
        limits=LIMITS,
    )
    assert created and m.points == 20


@pytest.mark.parametrize(
    ("currency", "amount", "points"), [("JPY", 1234, 1234), ("EUR", 1999, 19), ("BHD", 12345, 12)]
)
def test_earning_follows_the_programme_currency(session, till, currency, amount, points) -> None:
    program.update_program(session, {"currency": currency}, Actor.cli())
    m = factories.member(session)
    p, _ = purchases.record_purchase(
        session,
        {"external_id": "x", "member_id": m.id, "amount": amount, "currency": currency},
        actor=till,
        limits=LIMITS,
    )
    assert p.points_earned == points == m.points


def test_refusals_write_nothing(session, till) -> None:
    m = factories.member(session)
    with pytest.raises(CurrencyMismatch):
        buy(session, till, m, 100, currency="USD")
    with pytest.raises(ValidationFailed):
        buy(session, till, m, 100, occurred_at=utcnow() + timedelta(days=2))
    other = factories.member(session)
    with pytest.raises(MemberMismatch):
        purchases.record_purchase(
            session,
            {
                "external_id": "y",
                "member_id": other.id,
                "card_number": m.card_number,
                "amount": 1,
                "currency": "EUR",
            },
            actor=till,
            limits=LIMITS,
        )
    members.block_card(session, m.card_number, "lost", actor=Actor.cli())
    with pytest.raises(CardBlocked):
        purchases.record_purchase(
            session,
            {"external_id": "z", "card_number": m.cards[0].number, "amount": 1, "currency": "EUR"},
            actor=till,
            limits=LIMITS,
        )
    assert m.points == 0 and entries(session, m) == []


def test_partial_repeated_and_full_returns(session, till) -> None:
    m = factories.member(session)
    p, _ = buy(session, till, m, 1000)  # 10 points
    r1, _ = give_back(session, till, p, 333)
    r2, _ = give_back(session, till, p, 333)
    assert (r1.points_reversed, r2.points_reversed, m.points) == (3, 3, 4)
    r3, _ = give_back(session, till, p, 334)
    assert r3.points_reversed == 4 and m.points == 0
    stored = session.get(Purchase, p.id)
    assert (stored.returned_amount, stored.points_reversed) == (1000, 10)
    assert [e.kind for e in entries(session, m)] == ["earn", "reverse", "reverse", "reverse"]
    with pytest.raises(ReturnExceedsPurchase):
        give_back(session, till, p, 1)


def test_a_return_exceeding_the_purchase_is_refused_and_writes_nothing(session, till) -> None:
    m = factories.member(session)
    p, _ = buy(session, till, m, 1000)
    give_back(session, till, p, 600)
    with pytest.raises(ReturnExceedsPurchase) as err:
        give_back(session, till, p, 401)
    assert "400 can still be returned" in err.value.detail
    assert session.get(Purchase, p.id).returned_amount == 600 and m.points == 4


def test_a_repeated_return_external_id_returns_the_first(session, till) -> None:
    m = factories.member(session)
    p, _ = buy(session, till, m, 1000)
    first, created = give_back(session, till, p, 500, external_id="r-1")
    again, created_again = give_back(session, till, p, 500, external_id="r-1")
    assert created and not created_again and again.id == first.id and m.points == 5


def test_a_return_after_spending_leaves_a_debt_that_the_next_purchase_pays(session, till) -> None:
    m = factories.member(session)
    p, _ = buy(session, till, m, 10000)  # 100 points
    purchases.adjust(
        session,
        m.id,
        -90,
        "spent at the till (stand-in for a redemption)",
        actor=till,
        limits=LIMITS,
    )
    assert m.available == 10
    give_back(session, till, p, 10000)  # takes back all 100: only 10 are left
    assert m.balance == {"points": -90, "held": 0, "pending": 0, "available": -90}
    assert entries(session, m)[-1].balance_after == -90
    with pytest.raises(InsufficientPoints):
        purchases.adjust(session, m.id, -1, "no spending while in debt", actor=till, limits=LIMITS)
    buy(session, till, m, 5000)  # earns 50: debt down to 40
    assert m.available == -40
    buy(session, till, m, 6000)  # earns 60: paid off, 20 left
    assert m.balance == {"points": 20, "held": 0, "pending": 0, "available": 20}
    session.flush()
    assert ledger.verify(session).ok


def test_adjustments_need_enough_points_to_take_away(session, till) -> None:
    m = factories.member(session)
    e = purchases.adjust(session, m.id, 50, "welcome gesture", actor=till, limits=LIMITS)
    assert (e.kind, e.points, e.balance_after, e.note, e.reason) == (
        "adjust",
        50,
        50,
        "welcome gesture",
        "staff_adjustment",
    )
    with pytest.raises(InsufficientPoints):
        purchases.adjust(session, m.id, -51, "too much", actor=till, limits=LIMITS)
    purchases.adjust(session, m.id, -50, "all of it", actor=till, limits=LIMITS)
    assert m.balance == {"points": 0, "held": 0, "pending": 0, "available": 0}


def test_the_database_refuses_to_edit_or_delete_ledger_entries(app, session, till) -> None:
    m = factories.member(session)
    buy(session, till, m, 1000)
    session.commit()
    for sql in ("UPDATE ledger_entries SET points = 1000", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(sql))
        session.rollback()
    assert session.scalar(select(func.sum(LedgerEntry.points))) == 10


def test_the_database_refuses_a_spend_below_zero_even_from_buggy_code(session, till) -> None:
    m = factories.member(session)
    buy(session, till, m, 1000)
    session.flush()
    with pytest.raises(IntegrityError):
        session.execute(
            text("UPDATE members SET points = points - 11 WHERE id = :id"), {"id": m.id}
        )
    session.rollback()


def test_verify_finds_a_tampered_balance(session, till) -> None:
    m = factories.member(session)
    p, _ = buy(session, till, m, 1000)
    give_back(session, till, p, 500)
    session.flush()
    assert ledger.verify(session).ok
    session.execute(text("UPDATE members SET points = points + 1 WHERE id = :id"), {"id": m.id})
    result = ledger.verify(session)
    assert not result.ok
    assert any("cached balance" in p for p in result.problems)
    session.execute(
        text("UPDATE purchases SET points_earned = points_earned + 1 WHERE id = :id"), {"id": p.id}
    )
    assert any("points_earned" in p for p in ledger.verify(session).problems)


def test_a_purchase_adds_its_amount_to_the_gross_spend_and_verify_checks_it(session, till) -> None:
    m = factories.member(session)
    p, _ = buy(session, till, m, 1000)
    buy(session, till, m, 50)  # earns no point (below one euro): still counted
    give_back(session, till, p, 500)  # a return takes nothing off: a bound, not the net
    session.flush()
    session.refresh(m)
    assert m.gross_spend == 1050
    assert ledger.verify(session).ok
    session.execute(text("UPDATE members SET gross_spend = 1049 WHERE id = :id"), {"id": m.id})
    assert any("gross spend" in p for p in ledger.verify(session).problems)


def test_quote_changes_nothing(session, till) -> None:
    m = factories.member(session)
    q = checkout.quote(session, {"member_id": m.id, "amount": 2599, "currency": "EUR"})
    assert q["points_earned"] == 25 and q["balance_after"]["points"] == 25
    assert m.points == 0 and session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    assert session.get(Member, m.id).points == 0
