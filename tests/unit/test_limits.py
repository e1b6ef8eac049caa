"""The liability ceilings and reasons as rules: read from the configuration, checked in the one
purchase path whoever records the purchase, and a blank reason refused by every schema that
takes one."""

from __future__ import annotations

import marshmallow as ma
import pytest

from loyalty.config import Config
from loyalty.domain import purchases
from loyalty.domain.clients import STRIPE, system_actor
from loyalty.domain.context import Actor, Limits
from loyalty.errors import LimitExceeded
from loyalty.models import Purchase
from loyalty.schemas.members import CardBlockSchema
from loyalty.schemas.purchases import AdjustmentSchema
from loyalty.schemas.vouchers import GoodwillSchema, VoucherVoidSchema, WinBackSchema
from tests import factories


def test_the_ceilings_come_from_the_environment_with_sensible_defaults(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "x")
    for name in ("PURCHASE_AMOUNT", "ADJUSTMENT_POINTS", "GOODWILL_AMOUNT", "GOODWILL_PERCENT"):
        monkeypatch.delenv(f"LOYALTY_MAX_{name}", raising=False)
    assert Limits.from_mapping(vars(Config(str(tmp_path)))) == Limits(
        max_purchase_amount=10_000_000,
        max_adjustment_points=100_000,
        max_goodwill_amount=25_000,
        max_goodwill_percent=50,
    )
    monkeypatch.setenv("LOYALTY_MAX_PURCHASE_AMOUNT", "250000")
    monkeypatch.setenv("LOYALTY_MAX_GOODWILL_PERCENT", "15")
    limits = Limits.from_mapping(vars(Config(str(tmp_path))))
    assert (limits.max_purchase_amount, limits.max_goodwill_percent) == (250_000, 15)
    assert limits.max_adjustment_points == 100_000


def test_a_value_above_a_ceiling_is_refused_naming_the_limit_and_the_field() -> None:
    limits = Limits(max_adjustment_points=10)
    limits.check("max_adjustment_points", 10, field="points")  # at the ceiling: allowed
    with pytest.raises(LimitExceeded) as caught:
        limits.check("max_adjustment_points", 11, field="points")
    assert (caught.value.status, caught.value.code) == (422, "limit_exceeded")
    assert caught.value.errors == {
        "points": ["11 is above the limit LOYALTY_MAX_ADJUSTMENT_POINTS = 10."]
    }


@pytest.mark.parametrize("recorder", ["till", "stripe"])
def test_the_purchase_ceiling_holds_on_the_one_purchase_path_whoever_records(
    session, recorder
) -> None:
    actor = factories.actor(session) if recorder == "till" else system_actor(session, STRIPE, "-")
    member = factories.member(session)
    data = {"external_id": "p-1", "member_id": member.id, "amount": 1001, "currency": "EUR"}
    with pytest.raises(LimitExceeded) as caught:
        purchases.record_purchase(
            session, data, actor=actor, limits=Limits(max_purchase_amount=1000)
        )
    assert list(caught.value.errors) == ["amount"]
    assert session.query(Purchase).count() == 0
    receipt, created = purchases.record_purchase(
        session, {**data, "amount": 1000}, actor=actor, limits=Limits(max_purchase_amount=1000)
    )
    assert created and receipt.points_earned == 10


def test_an_adjustment_ceiling_holds_both_ways(session) -> None:
    member = factories.member(session)
    limits = Limits(max_adjustment_points=50)
    for points in (51, -51):
        with pytest.raises(LimitExceeded):
            purchases.adjust(session, member.id, points, "fix", actor=Actor.cli(), limits=limits)
    entry = purchases.adjust(session, member.id, 50, "fix", actor=Actor.cli(), limits=limits)
    assert entry.balance_after == 50


def test_only_the_maker_or_an_admin_owns_an_object() -> None:
    till = Actor(client_id=1, name="till")
    assert till.owns(1) and not till.owns(2) and not till.owns(None)
    assert Actor(client_id=2, name="staff", admin=True).owns(1)
    assert Actor.cli().owns(1)


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (AdjustmentSchema(), {"points": 5}),
        (GoodwillSchema(), {"kind": "amount", "value": 100, "valid_days": 30}),
        (VoucherVoidSchema(), {}),
    ],
)
@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_a_required_reason_may_not_be_blank(schema, body, blank) -> None:
    with pytest.raises(ma.ValidationError) as caught:
        schema.load({**body, "reason": blank})
    assert list(caught.value.messages) == ["reason"]
    assert schema.load({**body, "reason": "  late delivery "})["reason"] == "late delivery"


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (CardBlockSchema(), {}),
        (WinBackSchema(), {"kind": "amount", "value": 100, "valid_days": 30, "inactive_days": 9}),
    ],
)
def test_an_optional_blank_reason_is_none(schema, body) -> None:
    assert schema.load({**body, "reason": "  "})["reason"] is None
    assert schema.load({**body, "reason": None})["reason"] is None
    assert schema.load({**body, "reason": " lost "})["reason"] == "lost"
    with pytest.raises(ma.ValidationError):
        schema.load({**body, "reason": "x" * 501})
