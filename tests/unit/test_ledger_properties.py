"""Property: any sequence of purchases, returns and adjustments keeps the books balanced.

A plain-Python model predicts the balance; after every step the database must agree with it and
`ledger.verify` must find nothing.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from loyalty.domain import ledger, purchases
from loyalty.domain.context import Actor
from loyalty.errors import InsufficientPoints, ReturnExceedsPurchase
from tests import factories

purchase_op = st.tuples(st.just("purchase"), st.integers(0, 50_000))
return_op = st.tuples(st.just("return"), st.integers(0, 10), st.integers(1, 60_000))
adjust_op = st.tuples(st.just("adjust"), st.integers(-600, 600).filter(bool))
operations = st.lists(st.one_of(purchase_op, return_op, adjust_op), min_size=1, max_size=25)


@pytest.fixture
def till(session) -> Actor:
    factories.api_client(session, ("pos",), name="prop-till")
    client_id = session.scalar(text("SELECT id FROM api_clients WHERE name = 'prop-till'"))
    return Actor(client_id=client_id, name="prop-till")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_random_sequences_keep_every_invariant(session, till, ops) -> None:
    member = factories.member(session)
    bought: list[tuple[int, int, int]] = []  # (purchase id, amount, points earned)
    returned: dict[int, tuple[int, int]] = {}  # purchase id → (amount returned, points reversed)
    expected = 0
    for op in ops:
        if op[0] == "purchase":
            p, _ = purchases.record_purchase(
                session,
                {
                    "external_id": f"p-{factories.next_id()}",
                    "member_id": member.id,
                    "amount": op[1],
                    "currency": "EUR",
                },
                actor=till,
            )
            assert p.points_earned == op[1] // 100
            bought.append((p.id, op[1], p.points_earned))
            expected += p.points_earned
        elif op[0] == "return" and bought:
            pid, amount, earned = bought[op[1] % len(bought)]
            done, reversed_before = returned.get(pid, (0, 0))
            try:
                r, _ = purchases.record_return(
                    session,
                    pid,
                    {"external_id": f"r-{factories.next_id()}", "amount": op[2]},
                    actor=till,
                )
            except ReturnExceedsPurchase:
                assert done + op[2] > amount
            else:
                assert done + op[2] <= amount
                target = earned * (done + op[2]) // amount
                assert r.points_reversed == target - reversed_before
                returned[pid] = (done + op[2], target)
                expected -= r.points_reversed
        elif op[0] == "adjust":
            try:
                purchases.adjust(session, member.id, op[1], "property test", actor=till)
            except InsufficientPoints:
                assert op[1] < 0 and member.available + op[1] < 0
            else:
                expected += op[1]
        session.flush()
        assert member.points == expected
        assert member.held == 0 and member.available >= member.available_floor
        result = ledger.verify(session)
        assert result.ok, result.problems
