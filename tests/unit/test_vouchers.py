"""Voucher codes, discounts and the holdout split."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loyalty.domain import vouchers
from loyalty.models import Voucher


def test_codes_are_10_unambiguous_characters() -> None:
    codes = {vouchers.generate_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) == 10 and not set(code) & set("0O1IL")


@pytest.mark.parametrize("typed", ["abcd-efgh-jk", "ABCDEFGHJK", " abcd efgh jk ", "Abcd-EfGh-Jk"])
def test_typed_codes_are_case_and_dash_insensitive(typed: str) -> None:
    assert vouchers.normalise_code(typed) == "ABCDEFGHJK"


@pytest.mark.parametrize("typed", ["ABCD-EFGH-J0", "ABCD-EFGH", "ABCD-EFGH-JKL", "ABCD-EFGH-J1"])
def test_text_that_cannot_be_a_code(typed: str) -> None:
    assert vouchers.normalise_code(typed) is None


def voucher(discount_type: str, value: int) -> Voucher:
    return Voucher(discount_type=discount_type, value=value, min_spend=0)


@pytest.mark.parametrize(
    ("discount_type", "value", "amount", "discount"),
    [
        ("percent", 10, 1999, 199),  # 199.9 rounds down to the minor unit
        ("percent", 15, 999, 149),  # 149.85 → 149
        ("percent", 100, 1234, 1234),
        ("amount", 500, 2000, 500),
        ("amount", 500, 300, 300),  # never more than the basket
        ("amount", 500, 0, 0),
    ],
)
def test_discounts_are_integers_and_never_exceed_the_basket(
    discount_type: str, value: int, amount: int, discount: int
) -> None:
    assert vouchers.discount_for(voucher(discount_type, value), amount) == discount


def test_the_holdout_is_deterministic_by_member_and_campaign_and_about_its_share() -> None:
    held = [m for m in range(10_000) if vouchers.in_holdout(m, "win_back:2026-11", 20)]
    assert 1800 < len(held) < 2200
    assert held == [m for m in range(10_000) if vouchers.in_holdout(m, "win_back:2026-11", 20)]
    other = {m for m in range(10_000) if vouchers.in_holdout(m, "win_back:2026-12", 20)}
    assert other != set(held)
    assert not any(vouchers.in_holdout(m, "c", 0) for m in range(1000))
    assert all(vouchers.in_holdout(m, "c", 100) for m in range(1000))


def test_come_back_vouchers_start_the_next_day() -> None:
    now = datetime(2026, 11, 22, 23, 59, tzinfo=UTC)
    assert vouchers.start_of_next_day(now) == datetime(2026, 11, 23, tzinfo=UTC)
