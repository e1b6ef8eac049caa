"""Point lots, expiry and pending points, at the domain layer, on the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text

from loyalty.domain import earning_rules, ledger, program, purchases, redemptions
from loyalty.domain.context import Actor, Limits
from loyalty.errors import InsufficientPoints
from loyalty.models import LedgerEntry, Member, PointLot
from loyalty.models.types import utcnow
from tests import factories

LIMITS = Limits()
AMS = ZoneInfo("Europe/Amsterdam")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STAFF = Actor.cli()


def lots_of(session, member) -> list[tuple[int, int]]:
    """(points, remaining) of the member's lots, oldest first."""
    session.flush()
    rows = session.execute(
        select(PointLot.points, PointLot.remaining)
        .where(PointLot.member_id == member.id)
        .order_by(PointLot.id)
    )
    return [tuple(r) for r in rows]


def kinds(session, member) -> list[tuple[str, int, int]]:
    rows = session.execute(
        select(LedgerEntry.kind, LedgerEntry.points, LedgerEntry.balance_after)
        .where(LedgerEntry.member_id == member.id)
        .order_by(LedgerEntry.id)
    )
    return [tuple(r) for r in rows]


def fresh(session, member) -> Member:
    session.expire_all()
    found = session.get(Member, member.id)
    assert found is not None
    return found


def earn(session, till, member, points, at, terms, purchase_id=None):
    return ledger.credit(
        session,
        member.id,
        "earn",
        points,
        reason="purchase",
        actor=till,
        purchase_id=purchase_id,
        now=at,
        terms=terms,
    )


def buy(session, till, member, amount, **extra):
    data = {
        "external_id": f"sale-{factories.next_id()}",
        "member_id": member.id,
        "amount": amount,
        "currency": "EUR",
        **extra,
    }
    return purchases.record_purchase(session, data, actor=till, limits=LIMITS)[0]


def give_back(session, till, purchase_id, amount):
    data = {"external_id": f"ret-{factories.next_id()}", "amount": amount}
    return purchases.record_return(session, purchase_id, data, actor=till)[0]


@pytest.mark.parametrize(
    ("earned", "days", "expires"),
    [
        # 22:30 UTC is 23:30 in Amsterdam (CET, +1): still 1 March there
        (datetime(2026, 3, 1, 22, 30, tzinfo=UTC), 1, datetime(2026, 3, 2, 23, 0, tzinfo=UTC)),
        # 23:30 UTC is 00:30 on 2 March in Amsterdam: a day later
        (datetime(2026, 3, 1, 23, 30, tzinfo=UTC), 1, datetime(2026, 3, 3, 23, 0, tzinfo=UTC)),
        # across the switch to summer time (29 March): midnight is 22:00 UTC then
        (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), 1, datetime(2026, 3, 29, 22, 0, tzinfo=UTC)),
        (datetime(2026, 3, 1, 9, 0, tzinfo=UTC), 365, datetime(2027, 3, 1, 23, 0, tzinfo=UTC)),
    ],
)
def test_a_lot_lapses_at_midnight_in_the_programmes_zone(earned, days, expires) -> None:
    assert ledger.LotTerms(days, None, AMS).expires_at(earned) == expires
    assert ledger.LotTerms(None, None, AMS).expires_at(earned) is None


def test_a_purchase_makes_a_lot_with_the_programmes_expiry(session, till) -> None:
    prog = program.ensure_program(session)
    prog.points_expire_after_days, prog.timezone = 30, "Europe/Amsterdam"
    m = factories.member(session)
    p = buy(session, till, m, 2599)
    [lot] = session.scalars(select(PointLot).where(PointLot.member_id == m.id)).all()
    assert (lot.points, lot.remaining, lot.purchase_id, lot.pending_until) == (25, 25, p.id, None)
    assert lot.expires_at == ledger.end_of_day(lot.created_at, 30, AMS)
    assert lot.expires_at.astimezone(AMS).time().isoformat() == "00:00:00"
    assert ledger.verify(session).ok


def test_spending_takes_the_soonest_expiring_lots_first(session, till) -> None:
    m = factories.member(session)
    short, long_ = ledger.LotTerms(10, None, UTC), ledger.LotTerms(100, None, UTC)
    earn(session, till, m, 100, T0, long_)  # lapses last of the expiring ones
    earn(session, till, m, 50, T0, ledger.LotTerms())  # never lapses: taken last
    earn(session, till, m, 30, T0, short)  # lapses first
    member = ledger.lock_member(session, m.id)
    ledger.post(session, member, "adjust", -40, reason="staff_adjustment", actor=STAFF)
    assert lots_of(session, m) == [(100, 90), (50, 50), (30, 0)]
    ledger.post(session, member, "adjust", -95, reason="staff_adjustment", actor=STAFF)
    assert lots_of(session, m) == [(100, 0), (50, 45), (30, 0)]
    assert member.points == 45 and ledger.verify(session).ok


def test_a_return_takes_back_from_its_own_purchases_lot_first(session, till) -> None:
    m = factories.member(session)
    first = buy(session, till, m, 10000)  # 100 points, the older lot
    second = buy(session, till, m, 5000)  # 50 points
    give_back(session, till, second.id, 2000)  # 20 points back, from the second's lot
    assert lots_of(session, m) == [(100, 100), (50, 30)]
    give_back(session, till, second.id, 3000)  # the rest of it
    assert lots_of(session, m) == [(100, 100), (50, 0)]
    assert fresh(session, m).points == 100
    give_back(session, till, first.id, 10000)
    assert lots_of(session, m) == [(100, 0), (50, 0)] and ledger.verify(session).ok


def test_a_debt_is_paid_by_the_next_credit_before_it_fills_a_lot(session, till) -> None:
    m = factories.member(session)
    p = buy(session, till, m, 10000)  # 100 points
    member = ledger.lock_member(session, m.id)
    ledger.post(session, member, "adjust", -80, reason="staff_adjustment", actor=STAFF)
    give_back(session, till, p.id, 10000)  # takes back 100: 20 from the lot, 80 of debt
    assert fresh(session, m).points == -80 and lots_of(session, m) == [(100, 0)]
    buy(session, till, m, 5000)  # 50 points: all of it pays the debt
    buy(session, till, m, 5000)  # 50 more: 30 pay the debt, 20 stay
    assert fresh(session, m).points == 20
    assert lots_of(session, m) == [(100, 0), (50, 0), (50, 20)] and ledger.verify(session).ok


def test_the_expiry_job_expires_what_is_left_once_and_catches_up(session, till) -> None:
    m = factories.member(session)
    terms = ledger.LotTerms(1, None, AMS)
    earn(session, till, m, 100, T0, terms)  # 1 March: lapses at 3 March 00:00 CET
    earn(session, till, m, 40, T0 + timedelta(days=1), terms)  # lapses at 4 March 00:00
    earn(session, till, m, 7, T0, ledger.LotTerms())  # never
    member = ledger.lock_member(session, m.id)
    ledger.post(session, member, "adjust", -30, reason="staff_adjustment", actor=STAFF)
    session.flush()
    lapse = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    nothing = ledger.expire_lots(session, m.id, m.id, as_of=lapse - timedelta(seconds=1))
    assert (nothing.lots, nothing.points) == (0, 0)
    done = ledger.expire_lots(session, m.id, m.id, as_of=lapse)
    assert (done.lots, done.points, done.members) == (1, 70, 1)
    assert lots_of(session, m) == [(100, 0), (40, 40), (7, 7)]
    again = ledger.expire_lots(session, m.id, m.id, as_of=lapse)
    assert (again.lots, again.points) == (0, 0)  # running it twice expires nothing more
    # a week of missed runs: exactly the second lot, once
    late = ledger.expire_lots(session, m.id, m.id, as_of=lapse + timedelta(days=7))
    assert (late.lots, late.points) == (1, 40)
    assert kinds(session, m)[-2:] == [("expire", -70, 47), ("expire", -40, 7)]
    assert fresh(session, m).points == 7 and ledger.verify(session).ok


def test_the_expiry_job_never_takes_held_points(session, till) -> None:
    m = factories.member(session)
    earn(session, till, m, 100, utcnow(), ledger.LotTerms(1, None, UTC))  # lapses tomorrow night
    reward = factories.reward(session, 30)
    red = redemptions.reserve(session, {"member_id": m.id, "reward_id": reward.id}, actor=till)
    later = utcnow() + timedelta(days=3)  # the reservation still holds when the lot lapses
    done = ledger.expire_lots(session, m.id, m.id, as_of=later)
    assert (done.lots, done.points) == (1, 70)  # the 30 held stay in their lot
    assert lots_of(session, m) == [(100, 30)]
    assert fresh(session, m).balance == {"points": 30, "held": 30, "pending": 0, "available": 0}
    redemptions.cancel(session, red.id, actor=till)
    done = ledger.expire_lots(session, m.id, m.id, as_of=later)
    assert (done.lots, done.points) == (1, 30)  # released: the next run expires them
    assert fresh(session, m).points == 0 and ledger.verify(session).ok


def test_pending_points_are_not_spendable_until_released(session, till) -> None:
    prog = program.ensure_program(session)
    prog.pending_days = 14
    m = factories.member(session)
    p = buy(session, till, m, 10000)
    assert p.balance == {"points": 100, "held": 0, "pending": 100, "available": 0}
    member = ledger.lock_member(session, m.id)
    with pytest.raises(InsufficientPoints):
        ledger.post(session, member, "adjust", -1, reason="staff_adjustment", actor=STAFF)
    reward = factories.reward(session, 30)
    with pytest.raises(InsufficientPoints):
        redemptions.reserve(session, {"member_id": m.id, "reward_id": reward.id}, actor=till)
    [lot] = session.scalars(select(PointLot).where(PointLot.member_id == m.id)).all()
    assert lot.pending_until is not None
    assert ledger.release_pending(session, lot.pending_until - timedelta(seconds=1)) == 0
    assert ledger.release_pending(session, lot.pending_until) == 100
    assert fresh(session, m).balance == {
        "points": 100,
        "held": 0,
        "pending": 0,
        "available": 100,
    }
    assert ledger.release_pending(session, lot.pending_until) == 0 and ledger.verify(session).ok


def test_a_return_inside_the_window_cancels_pending_points_without_a_debt(session, till) -> None:
    prog = program.ensure_program(session)
    prog.pending_days = 14
    m = factories.member(session)
    p = buy(session, till, m, 10000)  # 100 pending
    ret = give_back(session, till, p.id, 4000)
    assert ret.points_reversed == 40
    member = fresh(session, m)
    assert member.balance == {"points": 60, "held": 0, "pending": 60, "available": 0}
    assert member.available_floor == 0  # no debt
    give_back(session, till, p.id, 6000)
    assert fresh(session, m).balance == {"points": 0, "held": 0, "pending": 0, "available": 0}
    assert lots_of(session, m) == [(100, 0)] and ledger.verify(session).ok


def test_a_credit_on_a_debt_is_pending_only_for_what_is_left(session, till) -> None:
    m = factories.member(session)
    p = buy(session, till, m, 5000)
    member = ledger.lock_member(session, m.id)
    ledger.post(session, member, "adjust", -50, reason="staff_adjustment", actor=STAFF)
    give_back(session, till, p.id, 3000)  # a debt of 30
    prog = program.ensure_program(session)
    prog.pending_days = 14
    session.flush()
    buy(session, till, m, 10000)  # 100 points: 30 pay the debt, 70 pending
    assert fresh(session, m).balance == {"points": 70, "held": 0, "pending": 70, "available": 0}
    assert ledger.verify(session).ok


def test_a_purchase_with_a_bonus_chains_its_entries_from_the_balance_before_in_one_lot(
    session, till
) -> None:
    m = factories.member(session)
    p = buy(session, till, m, 10200)  # 102 points
    member = ledger.lock_member(session, m.id)
    ledger.post(session, member, "adjust", -102, reason="staff_adjustment", actor=STAFF)
    give_back(session, till, p.id, 10200)  # a debt of 102
    earning_rules.create_rule(
        session,
        {
            "name": "Big basket",
            "kind": "bonus_points",
            "value": 5,
            "conditions": {"min_spend": 1000},
        },
        actor=STAFF,
    )
    prog = program.ensure_program(session)
    prog.pending_days = 14
    session.flush()
    before = kinds(session, m)
    sale = buy(session, till, m, 10000)  # 100 points + a bonus of 5, in one credit
    assert sale.points_earned == 105
    assert kinds(session, m)[len(before) :] == [("earn", 100, -2), ("bonus", 5, 3)]
    lots = session.execute(
        select(PointLot.points, PointLot.remaining, PointLot.purchase_id, PointLot.entry_id)
        .where(PointLot.purchase_id == sale.id)
        .order_by(PointLot.id)
    ).all()
    entry_ids = session.scalars(
        select(LedgerEntry.id).where(LedgerEntry.purchase_id == sale.id).order_by(LedgerEntry.id)
    ).all()
    # one lot for the credit, naming its first entry: 102 of its 105 pay the debt, 3 are left,
    # pending (what a lot per award would hold together: 0 of the earn's 100, 3 of the bonus's 5)
    assert [tuple(lot) for lot in lots] == [(105, 3, sale.id, entry_ids[0])]
    assert fresh(session, m).balance == {"points": 3, "held": 0, "pending": 3, "available": 0}
    assert ledger.verify(session).ok


def test_verify_finds_lots_that_do_not_add_up(session, till) -> None:
    m = factories.member(session)
    buy(session, till, m, 10000)
    session.flush()
    session.execute(text("UPDATE point_lots SET remaining = remaining - 1"))
    problems = ledger.verify(session).problems
    assert len(problems) == 1 and problems[0].startswith("remaining lots != balance")
    session.execute(
        text("UPDATE point_lots SET remaining = remaining + 1, pending_until = :t"),
        {"t": datetime(2030, 1, 1, tzinfo=UTC)},
    )
    problems = ledger.verify(session).problems
    assert len(problems) == 1 and problems[0].startswith("pending != remaining pending lots")


def test_a_reservation_or_adjustment_first_releases_pending_points_that_are_due(
    session, till
) -> None:
    prog = program.ensure_program(session)
    prog.pending_days = 14
    m = factories.member(session)
    buy(session, till, m, 10000)  # 100 pending
    session.flush()
    session.execute(
        text("UPDATE point_lots SET pending_until = :t WHERE member_id = :m"),
        {"t": utcnow() - timedelta(seconds=1), "m": m.id},
    )  # their time is over; no job has run
    reward = factories.reward(session, 30)
    red = redemptions.reserve(session, {"member_id": m.id, "reward_id": reward.id}, actor=till)
    assert red.status == "reserved"
    assert fresh(session, m).balance == {"points": 100, "held": 30, "pending": 0, "available": 70}
    assert ledger.verify(session).ok
