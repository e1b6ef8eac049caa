"""The lean POST /purchases path must answer exactly as the schemas would.

load_purchase_fast may only return what PurchaseCreateSchema().load returns, or None (ask the
schema); dump_purchase_result must write what PurchaseResultSchema().dump writes, byte for byte
once encoded, key order included.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import marshmallow as ma
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty.domain.purchases import Receipt
from loyalty.schemas.purchases import (
    PurchaseCreateSchema,
    PurchaseResultSchema,
    dump_purchase_result,
    load_purchase_fast,
)

SCHEMA = PurchaseCreateSchema()
CANONICAL = {
    "external_id": "till-7-receipt-1",
    "card_number": "9900000000000002",
    "amount": 2599,
    "currency": "EUR",
}


def schema_load(raw: bytes) -> dict | None:
    """What the documented path makes of the body: the loaded dict, or None when refused."""
    try:
        body = json.loads(raw.decode("utf-8"))
        return SCHEMA.load(body)
    except (ValueError, ma.ValidationError):
        return None


def assert_agrees(body: object) -> dict | None:
    raw = json.dumps(body).encode()
    fast = load_purchase_fast(raw)
    if fast is not None:
        assert fast == schema_load(raw), body
    return fast


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"member_id": 7},
        {"store_id": "amsterdam-1"},
        {"store_id": None},
        {"store_id": ""},
        {"occurred_at": "2026-11-20T10:15:00+01:00"},
        {"occurred_at": "2026-11-20T10:15:00.123456Z"},
        {"external_id": "é" * 255},
        {"amount": 0},
        {"amount": 10**12},
        {"currency": "eur"},
    ],
)
def test_the_common_bodies_take_the_lean_path_with_the_schemas_result(extra) -> None:
    assert assert_agrees({**CANONICAL, **extra}) is not None


@pytest.mark.parametrize(
    "extra",
    [
        {"amount": -1},
        {"amount": 10**12 + 1},
        {"amount": 25.0},
        {"amount": "2599"},
        {"amount": True},
        {"member_id": 0},
        {"member_id": 2**63},
        {"member_id": False},
        {"external_id": ""},
        {"external_id": "x" * 256},
        {"external_id": "a\x00b"},
        {"external_id": "\ud800"},
        {"external_id": 12},
        {"card_number": ""},
        {"card_number": "9" * 41},
        {"currency": "EURO"},
        {"currency": "EU1"},
        {"currency": "EUR\n"},
        {"currency": "ÉUR"},
        {"store_id": "s" * 101},
        {"store_id": 5},
        {"occurred_at": "2026-11-20T10:15:00"},  # no offset: the schema refuses it
        {"occurred_at": "yesterday"},
        {"occurred_at": None},
        {"lines": []},  # lines and vouchers: the documented path
        {"voucher_codes": ["ABC"]},
        {"unknown": 1},
    ],
)
def test_anything_else_is_left_to_the_schema(extra) -> None:
    assert assert_agrees({**CANONICAL, **extra}) is None


def test_bodies_that_are_not_json_objects_are_left_to_the_schema() -> None:
    for raw in (b"", b"[]", b"null", b"{", b"\xff\xfe{}", json.dumps(CANONICAL).encode("utf-16")):
        assert load_purchase_fast(raw) is None


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.sampled_from(
        ["EUR", "eur", "EUR\n", "ÉUR", "\ud800", "a\x00", "2026-11-20T10:15:00Z", "2026-13-01"]
    ),
    st.lists(st.integers(), max_size=2),
)
keys = st.sampled_from(
    ["external_id", "card_number", "member_id", "amount", "currency", "occurred_at", "store_id"]
)


@settings(max_examples=400, deadline=None)
@given(overrides=st.dictionaries(keys, values, max_size=4), drop=st.sets(keys, max_size=2))
def test_generated_bodies_never_get_another_answer_than_the_schemas(overrides, drop) -> None:
    body = {k: v for k, v in {**CANONICAL, **overrides}.items() if k not in drop}
    assert_agrees(body)


@pytest.mark.parametrize(
    "occurred_at",
    [
        datetime(2026, 11, 20, 10, 15, tzinfo=UTC),
        datetime(2026, 11, 20, 10, 15, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 20, 10, 15, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
@pytest.mark.parametrize("store_id", [None, "amsterdam-1"])
def test_the_written_answer_is_the_schemas_byte_for_byte(app, occurred_at, store_id) -> None:
    receipt = Receipt(
        id=41,
        external_id="till-7-receipt-1",
        member_id=3,
        amount=2599,
        currency="EUR",
        occurred_at=occurred_at,
        store_id=store_id,
        points_earned=25,
        balance={"points": 30, "held": 10, "available": 20},
    )
    with app.app_context():
        secret = app.config["SECRET_KEY"]
        fast = json.dumps(dump_purchase_result(receipt, secret))
        documented = json.dumps(PurchaseResultSchema().dump(receipt))
    assert fast == documented
    assert json.loads(fast)["feedback_token"]


@pytest.mark.parametrize("purchase_id", [1, 41, 2**31, 2**63 - 1])
def test_feedback_tokens_are_itsdangerous_tokens(purchase_id) -> None:
    """token_for keeps its signer; its tokens stay those URLSafeSerializer makes and reads."""
    from itsdangerous import URLSafeSerializer

    from loyalty.domain.feedback import token_for

    serializer = URLSafeSerializer("s3cret", salt="loyalty.feedback")
    token = token_for(purchase_id, "s3cret")
    assert token == serializer.dumps(purchase_id)
    assert serializer.loads(token) == purchase_id
    assert token != token_for(purchase_id, "another secret")
