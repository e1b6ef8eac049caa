"""Property: any sequence of purchases, returns, adjustments and reward redemptions (reserve,
confirm, cancel), changes of the programme's expiry and pending time, and runs of the expiry
job on a few members keeps the books balanced.

Everything goes through the domain functions the API calls. A plain-Python model predicts each
member's points and held points; after every step the database must agree with it, every
refusal must be the one the model predicts (InsufficientPoints exactly when the available points
are short of what is needed), and the member rows, their entries and their open reservations
must agree with each other. At the end `ledger.verify` must find nothing.

The model also keeps each member's lots: what is left of each credit, its expiry (in days after
today) and whether it is pending; debits take from them in the ledger's order (a return from its
own purchase's lots first, then spendable lots soonest-expiring first, never-expiring last, then
pending ones), the expiry job takes what is left of the lapsed ones but never held points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty.domain import ledger, program, purchases, redemptions
from loyalty.domain.context import Actor, Limits
from loyalty.errors import (
    InsufficientPoints,
    MemberMismatch,
    RedemptionAlreadyRedeemed,
    RedemptionNotReserved,
    ReturnExceedsPurchase,
)
from loyalty.models import LedgerEntry, Member, PointLot, Redemption
from loyalty.models.types import utcnow
from tests import factories

MEMBERS = 2
COSTS = (3, 25, 150)  # the rewards' points costs

who = st.integers(0, MEMBERS - 1)
pick = st.integers(0, 50)  # an index into the purchases or reservations made so far (modulo)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("purchase"), who, st.integers(0, 50_000)),
        # "rest": all that is left of the purchase (a full return gives back the rewards on it)
        st.tuples(st.just("return"), pick, st.just("rest") | st.integers(1, 60_000)),
        st.tuples(st.just("adjust"), who, st.integers(-600, -1) | st.integers(1, 600)),
        st.tuples(st.just("reserve"), who, st.integers(0, len(COSTS) - 1), st.booleans()),
        # confirm on no purchase, on one of the member's own, or on any (maybe another member's)
        st.tuples(st.just("confirm"), pick, st.none() | st.tuples(st.booleans(), pick)),
        st.tuples(st.just("cancel"), pick),
        # the programme's points_expire_after_days and whether earnings are pending (14 days)
        st.tuples(st.just("policy"), st.sampled_from([None, 10, 30]), st.booleans()),
        # the expiry job, run as of this many days from now
        st.tuples(st.just("expire"), st.sampled_from([0, 15, 45])),
    ),
    min_size=8,
    max_size=30,
)
first_purchases = st.lists(st.integers(0, 30_000), min_size=MEMBERS, max_size=MEMBERS)

LIMITS = Limits()  # the default ceilings


@dataclass
class Account:
    """The model of one member's balance."""

    id: int
    points: int = 0
    held: int = 0
    lots: list[Lot] = field(default_factory=list)

    @property
    def pending(self) -> int:
        return sum(lot.remaining for lot in self.lots if lot.pending)

    @property
    def available(self) -> int:
        return self.points - self.held - self.pending

    def credit(self, points: int, expires: int | None, pending: bool, purchase: Any) -> None:
        """A credit: what it does not pay of a debt is its lot's."""
        self.points += points
        remaining = max(0, min(points, self.points))
        self.lots.append(Lot(next(LOT_SEQ), purchase, points, remaining, expires, pending))

    def debit(self, points: int, purchase: Any = None) -> None:
        """A debit: taken from the lots in the ledger's order; what they lack is a debt."""
        self.points -= points

        def order(lot: Lot) -> tuple[Any, ...]:
            never = lot.expires is None
            return (lot.purchase is not purchase or purchase is None, lot.pending, never,
                    lot.expires or 0, lot.seq)  # fmt: skip

        for lot in sorted(self.lots, key=order):
            take = min(points, lot.remaining)
            lot.remaining, points = lot.remaining - take, points - take

    def expire(self, days: int) -> None:
        """The expiry job as of `days` days from now: pending lots due become spendable, then
        lapsed lots give up what is left, up to the points not held."""
        for lot in self.lots:
            if lot.pending and days > PENDING_DAYS:
                lot.pending = False
        cap = self.points - self.held - self.pending
        lapsed = [lot for lot in self.lots if lot.expires is not None and lot.expires + 1 <= days]
        for lot in sorted(lapsed, key=lambda lot: (lot.pending, lot.expires, lot.seq)):
            if lot.pending:
                continue
            take = max(0, min(lot.remaining, cap))
            lot.remaining, cap, self.points = lot.remaining - take, cap - take, self.points - take


LOT_SEQ = count()
PENDING_DAYS = 14


@dataclass
class Lot:
    seq: int
    purchase: Any
    points: int
    remaining: int
    expires: int | None  # days after today; lapses at the end of that day
    pending: bool


@dataclass
class Bought:
    id: int
    external_id: str
    member: Account
    amount: int
    earned: int
    returned: int = 0
    reversed: int = 0


@dataclass
class Reservation:
    id: int
    member: Account
    points: int
    status: str
    purchase: Bought | None = None
    given_back: bool = False


@dataclass
class World:
    """The database session and the model, side by side; one method per operation."""

    session: Session
    till: Actor
    rewards: list[int]
    accounts: list[Account]
    bought: list[Bought] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    expire_days: int | None = None
    pending: bool = False

    def purchase(self, m: int, amount: int) -> str:
        account = self.accounts[m]
        external_id = f"p-{factories.next_id()}"
        data = {
            "external_id": external_id,
            "member_id": account.id,
            "amount": amount,
            "currency": "EUR",
        }
        receipt, created = purchases.record_purchase(
            self.session, data, actor=self.till, limits=LIMITS
        )
        assert created and receipt.points_earned == amount // 100
        bought = Bought(receipt.id, external_id, account, amount, amount // 100)
        self.bought.append(bought)
        if amount >= 100:
            account.credit(amount // 100, self.expire_days, self.pending, bought)
        return "earned" if amount >= 100 else "earned nothing"

    def return_(self, k: int, how_much: int | str) -> str:
        if not self.bought:
            return "nothing bought yet"
        b = self.bought[k % len(self.bought)]
        amount = how_much if isinstance(how_much, int) else max(1, b.amount - b.returned)
        data = {"external_id": f"r-{factories.next_id()}", "amount": amount}
        try:
            r, _ = purchases.record_return(self.session, b.id, data, actor=self.till)
        except ReturnExceedsPurchase:
            assert b.returned + amount > b.amount
            return "refused: more than bought"
        assert b.returned + amount <= b.amount
        target = b.earned * (b.returned + amount) // b.amount  # cumulative pro rata, rounded down
        assert r.points_reversed == target - b.reversed
        pending_before = b.member.pending
        if target > b.reversed:
            b.member.debit(target - b.reversed, b)  # may leave a debt
        b.returned, b.reversed = b.returned + amount, target
        outcome = "in debt" if b.member.available < 0 else "taken back"
        if b.member.pending < pending_before:
            outcome = "pending points cancelled"
        if b.returned == b.amount:  # rewards redeemed on a fully returned purchase come back
            for res in self.reservations:
                if res.purchase is b and res.status == "redeemed" and not res.given_back:
                    res.given_back = True
                    b.member.credit(res.points, self.expire_days, False, None)
                    outcome = "reward points given back"
        return outcome

    def adjust(self, m: int, points: int) -> str:
        account = self.accounts[m]
        try:
            purchases.adjust(
                self.session, account.id, points, "property test", actor=self.till, limits=LIMITS
            )
        except InsufficientPoints:
            assert account.available < -points
            return "refused: insufficient points"
        assert points > 0 or account.available >= -points
        if points > 0:
            account.credit(points, self.expire_days, False, None)
        else:
            account.debit(-points)
        return "added" if points > 0 else "taken"

    def reserve(self, m: int, reward: int, instant: bool) -> str:
        account, cost = self.accounts[m], COSTS[reward]
        data = {"member_id": account.id, "reward_id": self.rewards[reward], "instant": instant}
        try:
            redemption = redemptions.reserve(self.session, data, actor=self.till)
        except InsufficientPoints:
            assert account.available < cost
            return "refused: insufficient points"
        assert account.available >= cost
        assert redemption.points == cost
        if instant:
            assert redemption.status == "redeemed"
            account.debit(cost)
        else:
            assert redemption.status == "reserved"
            account.held += cost
        self.reservations.append(Reservation(redemption.id, account, cost, redemption.status))
        return redemption.status

    def confirm(self, k: int, on_purchase: tuple[bool, int] | None) -> str:
        if not self.reservations:
            return "nothing reserved yet"
        res = self.reservations[k % len(self.reservations)]
        bought = None
        data: dict[str, Any] = {}
        if on_purchase is not None:
            own, j = on_purchase
            among = [b for b in self.bought if b.member is res.member or not own]
            if among:
                bought = among[j % len(among)]
                data["purchase_external_id"] = bought.external_id
        try:
            redemption = redemptions.confirm(self.session, res.id, data, actor=self.till)
        except RedemptionNotReserved:
            assert res.status == "released"
            return "refused: released"
        except MemberMismatch:
            assert res.status == "reserved"
            assert bought is not None and bought.member is not res.member
            return "refused: another member's purchase"
        assert redemption.status == "redeemed"
        if res.status == "redeemed":  # confirming again answers with the first confirmation
            return "already redeemed"
        assert res.status == "reserved" and (bought is None or bought.member is res.member)
        res.status, res.purchase = "redeemed", bought
        res.member.held -= res.points
        res.member.debit(res.points)
        return "redeemed" if bought is None else "redeemed on a purchase"

    def cancel(self, k: int) -> str:
        if not self.reservations:
            return "nothing reserved yet"
        res = self.reservations[k % len(self.reservations)]
        try:
            redemption = redemptions.cancel(self.session, res.id, actor=self.till)
        except RedemptionAlreadyRedeemed:
            assert res.status == "redeemed"
            return "refused: redeemed"
        assert redemption.status == "released"
        if res.status == "released":
            return "already released"
        res.status = "released"
        res.member.held -= res.points
        return "released"

    def policy(self, expire_days: int | None, pending: bool) -> str:
        prog = program.ensure_program(self.session)
        prog.points_expire_after_days = expire_days
        prog.pending_days = PENDING_DAYS if pending else None
        self.session.flush()
        self.expire_days, self.pending = expire_days, pending
        return f"expiry {expire_days}, pending {pending}"

    def expire(self, days: int) -> str:
        ids = [a.id for a in self.accounts]
        before = sum(a.points for a in self.accounts)
        done = ledger.expire_lots(
            self.session, min(ids), max(ids), as_of=utcnow() + timedelta(days=days)
        )
        for a in self.accounts:
            a.expire(days)
        assert done.points == before - sum(a.points for a in self.accounts)
        return "expired some" if done.points else "expired nothing"

    def check(self) -> None:
        """Each member row, its entries and its open reservations agree with the model."""
        ids = [a.id for a in self.accounts]
        rows = {
            row.id: row
            for row in self.session.execute(
                select(
                    Member.id, Member.points, Member.held, Member.pending, Member.available_floor
                ).where(Member.id.in_(ids))
            )
        }
        running = dict.fromkeys(ids, 0)
        for member_id, change, balance_after in self.session.execute(
            select(LedgerEntry.member_id, LedgerEntry.points, LedgerEntry.balance_after)
            .where(LedgerEntry.member_id.in_(ids))
            .order_by(LedgerEntry.id)
        ):
            running[member_id] += change
            assert balance_after == running[member_id]  # the balance_after chain
        open_holds = dict.fromkeys(ids, 0) | dict(
            self.session.execute(
                select(Redemption.member_id, func.sum(Redemption.points))
                .where(Redemption.member_id.in_(ids), Redemption.status == "reserved")
                .group_by(Redemption.member_id)
            ).all()
        )
        for a in self.accounts:
            row = rows[a.id]
            assert (row.points, row.held) == (a.points, a.held)
            assert row.points == running[a.id]  # the cached balance is the sum of the entries
            assert row.held == open_holds[a.id] and row.held >= 0
            assert row.available_floor <= 0 and row.points - row.held >= row.available_floor
            assert row.pending == a.pending
            lots = self.session.scalars(
                select(PointLot.remaining).where(PointLot.member_id == a.id).order_by(PointLot.id)
            ).all()
            assert list(lots) == [lot.remaining for lot in a.lots]


@pytest.fixture
def reward_ids(session: Session) -> list[int]:
    return [factories.reward(session, cost).id for cost in COSTS]


def play(session: Session, world: World, first: list[int], ops: list[tuple[Any, ...]]) -> None:
    for m, amount in enumerate(first):  # something to spend and to return from the start
        world.purchase(m, amount)
    for name, *args in ops:
        step = getattr(world, "return_" if name == "return" else name)
        event(f"{name}: {step(*args)}")  # --hypothesis-show-statistics shows what was covered
        session.flush()
        world.check()
    result = ledger.verify(session)
    assert result.ok, result.problems


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=first_purchases, ops=operations)
@example(  # a return's debt: reservations redeemed and released in debt, spends refused until a
    # purchase pays the debt off
    first=[10_000, 0],
    ops=[
        ("reserve", 0, 1, False),
        ("reserve", 0, 0, False),
        ("return", 0, "rest"),
        ("confirm", 0, None),
        ("cancel", 1),
        ("adjust", 0, -1),
        ("reserve", 0, 0, False),
        ("purchase", 0, 5_000),
        ("reserve", 0, 0, True),
    ],
)
@example(  # every redemption transition and refusal, and a reward given back by a full return
    first=[20_000, 5_000],
    ops=[
        ("reserve", 0, 1, False),
        ("confirm", 0, (True, 0)),
        ("reserve", 1, 0, False),
        ("confirm", 1, (False, 0)),
        ("cancel", 1),
        ("confirm", 1, None),
        ("cancel", 1),
        ("cancel", 0),
        ("return", 0, "rest"),
        ("confirm", 0, None),
    ],
)
@example(  # lots: pending points cancelled by a return, spent soonest-expiring first, released
    # and expired by the job (never the held ones), a debt paid before a lot fills
    first=[10_000, 3_000],
    ops=[
        ("policy", 10, True),
        ("purchase", 0, 20_000),
        ("return", 2, 5_000),
        ("reserve", 0, 1, False),
        ("policy", 30, False),
        ("purchase", 0, 4_000),
        ("adjust", 0, 50),
        ("reserve", 0, 2, False),
        ("expire", 15),
        ("cancel", 0),
        ("return", 1, "rest"),
        ("purchase", 1, 1_000),
        ("expire", 15),
        ("expire", 45),
        ("expire", 45),
    ],
)
def test_random_sequences_keep_every_invariant(session, till, reward_ids, first, ops) -> None:
    note(f"first={first!r}, ops={ops!r}")  # the failing case, ready to paste into an @example
    savepoint = session.begin_nested()  # each example starts from the same rows, and stays fast
    try:
        accounts = [Account(factories.member(session).id) for _ in range(MEMBERS)]
        play(session, World(session, till, reward_ids, accounts), first, ops)
    finally:
        savepoint.rollback()
        session.expunge_all()  # SQLite hands the rolled-back ids out again
