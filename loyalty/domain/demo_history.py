"""Two years of made-up trade for the demo (`seed-demo --history`, which `make run` uses), so
that the staff dashboard and the feedback inbox have something to show: customers who stay,
drift off, come and go; purchases, some returns, feedback with comments, come-back vouchers
with a holdout group. Everything goes through the domain functions a till's requests take
(`purchases.record_purchase`, `record_return`, `feedback.give_feedback`, `vouchers.come_back`,
`vouchers.goodwill`); only the clock is moved: the feedback, vouchers and holdouts are dated
when they would have happened (the purchases carry their own `occurred_at`). Random but
repeatable (a fixed seed).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty.domain import feedback, members, purchases, vouchers
from loyalty.domain.context import Actor, Limits, Settings
from loyalty.models import VoucherHoldout

CUSTOMERS = 40
DAYS = 730
STORES = ("amsterdam-centrum", "utrecht", "webshop")
FIRST = ("Noor", "Sem", "Emma", "Daan", "Julia", "Lucas", "Mila", "Finn", "Sara", "Levi")
LAST = ("de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Peters")
#: The come-back offer of the history (the demo programme itself has none).
COME_BACK: dict[str, Any] = {
    "kind": "amount",
    "value": 500,
    "valid_days": 30,
    "holdout_percent": 25,
}
COMMENTS = {
    "good": (
        "Friendly staff, quick at the till.",
        "Lekkere koffie en snelle service!",
        "Found everything I needed.",
        "Top, ik kom zeker terug.",
    ),
    "bad": (
        "Waited 15 minutes at the till.",
        "Het product was niet op voorraad.",
        "The webshop checkout kept failing.",
        "Retour ging heel moeizaam.",
        "My points were not added.",
    ),
}


@dataclass(frozen=True)
class Profile:
    name: str
    weight: float
    first_day: tuple[int, int]  # the first purchase, days after the start
    gap: tuple[int, int]  # days between purchases
    stops_after: int | None  # days after the first purchase (None: keeps buying)
    mood: float  # the chance a score is a happy one


PROFILES = (
    Profile("loyal", 0.25, (0, 300), (25, 50), None, 0.85),
    Profile("regular", 0.25, (0, 400), (35, 80), None, 0.7),
    Profile("occasional", 0.2, (0, 600), (70, 160), None, 0.6),
    Profile("churned", 0.2, (0, 300), (20, 60), 240, 0.3),
    Profile("new", 0.1, (DAYS - 75, DAYS - 5), (10, 30), None, 0.75),
)


@dataclass
class History:
    customers: int = 0
    purchases: int = 0
    returns: int = 0
    feedback: int = 0
    vouchers: int = 0


class _Trade:
    """One history's writer: the clock, the chance, who acts, what was made."""

    def __init__(
        self, session: Session, now: datetime, actor: Actor, settings: Settings, limits: Limits
    ) -> None:
        self.session, self.now, self.actor = session, now, actor
        self.settings, self.limits = settings, limits
        self.rng = random.Random(20261129)
        self.start = now - timedelta(days=DAYS)
        self.done = History()

    def customer(self, index: int) -> None:
        rng = self.rng
        profile = rng.choices(PROFILES, weights=[p.weight for p in PROFILES])[0]
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last.replace(' ', '')}.{index}@example.net".lower()
        member = members.enrol(
            self.session,
            {"name": f"{first} {last}", "email": email, "external_ref": f"sample-{index}"},
            settings=self.settings,
            actor=self.actor,
        )
        begin = self.start + timedelta(
            days=rng.randint(*profile.first_day), hours=rng.randint(8, 19)
        )
        member.created_at = begin - timedelta(days=rng.randint(0, 20))
        self.session.flush()  # before a purchase expires the member's cached row
        end = self.now - timedelta(hours=2)
        if profile.stops_after is not None:
            end = min(end, begin + timedelta(days=profile.stops_after))
        self.done.customers += 1
        due = [begin]
        count = 0
        while due and count < 24:
            at = heapq.heappop(due)
            if at > end:
                break
            count += 1
            comes_back = self._purchase(member.id, f"sample-{index}-{count}", at, profile)
            if comes_back is not None:
                heapq.heappush(due, comes_back)
            heapq.heappush(
                due, at + timedelta(days=rng.randint(*profile.gap), hours=rng.randint(-3, 3))
            )

    def _purchase(
        self, member_id: int, external_id: str, at: datetime, profile: Profile
    ) -> datetime | None:
        """One purchase, maybe a return, feedback and a come-back offer. Returns when the
        customer comes back for the offer, if they do."""
        rng = self.rng
        receipt, _ = purchases.record_purchase(
            self.session,
            {
                "external_id": external_id,
                "member_id": member_id,
                "amount": rng.randint(8, 90) * 100 + rng.choice((0, 50, 95)),
                "currency": "EUR",
                "occurred_at": at,
                "store_id": rng.choice(STORES),
            },
            actor=self.actor,
            limits=self.limits,
        )
        self.done.purchases += 1
        if rng.random() < 0.07:
            self._return(receipt.id, receipt.amount, at)
        if rng.random() < 0.35:
            self._feedback(member_id, receipt.id, at, profile)
        if receipt.amount >= 2500 and at > self.now - timedelta(days=400) and rng.random() < 0.5:
            return self._come_back(member_id, receipt.id, receipt.amount, at)
        return None

    def _return(self, purchase_id: int, amount: int, at: datetime) -> None:
        when = min(at + timedelta(days=self.rng.randint(1, 10)), self.now - timedelta(hours=1))
        purchases.record_return(
            self.session,
            purchase_id,
            {
                "external_id": f"return-{purchase_id}",
                "amount": amount * self.rng.randint(3, 10) // 10,
                "occurred_at": when,
            },
            actor=self.actor,
        )
        self.done.returns += 1

    def _feedback(self, member_id: int, purchase_id: int, at: datetime, profile: Profile) -> None:
        rng = self.rng
        happy = rng.random() < profile.mood
        answer = feedback.give_feedback(
            self.session,
            {
                "member_id": member_id,
                "purchase_id": purchase_id,
                "nps": rng.randint(8, 10) if happy else rng.randint(0, 7),
                "ces": rng.randint(1, 3) if happy else rng.randint(3, 7),
                "csat": rng.randint(4, 5) if happy else rng.randint(1, 3),
                "comment": rng.choice(COMMENTS["good" if happy else "bad"])
                if rng.random() < 0.6
                else None,
            },
            actor=self.actor,
        )
        answer.created_at = min(at + timedelta(hours=rng.randint(1, 48)), self.now)
        self.done.feedback += 1
        if not happy and answer.nps is not None and answer.nps <= 3 and rng.random() < 0.3:
            sorry = vouchers.goodwill(
                self.session,
                member_id,
                {"kind": "amount", "value": 500, "valid_days": 30, "reason": "sorry about that"},
                actor=self.actor,
                limits=self.limits,
            )
            # given when the answer came in, valid from then for its 30 days
            sorry.created_at = sorry.valid_from = answer.created_at
            sorry.valid_until = answer.created_at + timedelta(days=30)
            self.done.vouchers += 1

    def _come_back(
        self, member_id: int, purchase_id: int, amount: int, at: datetime
    ) -> datetime | None:
        """The come-back offer (or the holdout's record), dated the day after the purchase; a
        customer who got one comes back within it more often than one held out."""
        offer = vouchers.come_back(
            self.session, member_id, purchase_id, amount, COME_BACK, actor=self.actor
        )
        self.session.flush()
        valid_from = at + timedelta(days=1)
        valid_until = valid_from + timedelta(days=COME_BACK["valid_days"])
        if offer is None:
            held = self.session.scalars(
                select(VoucherHoldout).where(VoucherHoldout.source_purchase_id == purchase_id)
            ).one()
            held.created_at, held.valid_from, held.valid_until = at, valid_from, valid_until
            chance = 0.2
        else:
            offer.created_at, offer.valid_from, offer.valid_until = at, valid_from, valid_until
            self.done.vouchers += 1
            chance = 0.45
        if self.rng.random() >= chance:
            return None
        back = valid_from + timedelta(days=self.rng.randint(1, 25), hours=self.rng.randint(0, 8))
        return back if back < self.now - timedelta(hours=2) else None


def load(
    session: Session, *, now: datetime, actor: Actor, settings: Settings, limits: Limits
) -> History:
    """The history, written in `session` (not committed). `actor` must be an API client (the
    purchases are posted under it)."""
    trade = _Trade(session, now, actor, settings, limits)
    for index in range(1, CUSTOMERS + 1):
        trade.customer(index)
    session.flush()
    return trade.done
