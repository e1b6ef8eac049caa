"""Earning and reversal arithmetic (integers only)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.earning import reversal_for_return, scale


@pytest.mark.parametrize(
    ("currency", "amount", "exponent", "ppu", "rounding", "points"),
    [
        ("JPY", 1234, 0, 1, "down", 1234),  # 0 decimals: ¥1234 → 1234
        ("JPY", 1234, 0, 3, "down", 3702),
        ("EUR", 1999, 2, 1, "down", 19),  # 19.99 → 19 (floor)
        ("EUR", 1999, 2, 1, "half_up", 20),
        ("EUR", 1949, 2, 1, "half_up", 19),
        ("EUR", 1950, 2, 1, "half_up", 20),  # .5 rounds up
        ("EUR", 1901, 2, 1, "up", 20),
        ("EUR", 1900, 2, 1, "up", 19),
        ("EUR", 99, 2, 1, "down", 0),
        ("EUR", 0, 2, 5, "up", 0),  # a free purchase earns nothing
        ("BHD", 12345, 3, 2, "down", 24),  # 12.345 × 2 = 24.69 → 24
        ("BHD", 12345, 3, 2, "half_up", 25),
        ("BHD", 999, 3, 1, "down", 0),
    ],
)
def test_points_for_0_2_and_3_decimal_currencies(
    currency: str, amount: int, exponent: int, ppu: int, rounding: str, points: int
) -> None:
    assert scale(amount, ppu, exponent, rounding) == points


@given(st.integers(0, 10**12), st.integers(0, 10**4), st.sampled_from([0, 2, 3]))
def test_rounding_modes_bracket_the_exact_value(amount: int, ppu: int, exponent: int) -> None:
    down, up = scale(amount, ppu, exponent, "down"), scale(amount, ppu, exponent, "up")
    half = scale(amount, ppu, exponent, "half_up")
    exact_times_den = amount * ppu
    den = 10**exponent
    assert down * den <= exact_times_den <= up * den
    assert up - down in (0, 1) and down <= half <= up


def test_negative_amount_is_a_bug() -> None:
    with pytest.raises(ValueError):
        scale(-1, 1, 2, "down")


def test_partial_return_reverses_its_share_rounded_down() -> None:
    # earned 25 on 25.99; returning 13.00 takes back floor(25 × 1300 / 2599) = 12
    assert reversal_for_return(25, 2599, 0, 0, 1300) == 12


def test_repeated_partial_returns_add_up_to_the_whole_without_drift() -> None:
    earned, amount = 10, 1000
    returned = reversed_ = 0
    steps = []
    for part in (333, 333, 334):
        points = reversal_for_return(earned, amount, returned, reversed_, part)
        steps.append(points)
        returned += part
        reversed_ += points
    assert steps == [3, 3, 4]  # per-return flooring would give 3, 3, 3 and lose a point
    assert reversed_ == earned


def test_full_return_reverses_everything_earned() -> None:
    assert reversal_for_return(37, 4999, 0, 0, 4999) == 37


def test_a_free_purchase_reverses_nothing() -> None:
    assert reversal_for_return(0, 0, 0, 0, 0) == 0


@given(
    st.integers(0, 10**6),
    st.integers(1, 10**7),
    st.lists(st.integers(1, 10**6), min_size=1, max_size=10),
)
def test_reversals_never_exceed_earned_nor_the_returned_share(
    earned: int, amount: int, parts: list[int]
) -> None:
    returned = reversed_ = 0
    for part in parts:
        if returned + part > amount:
            break
        reversed_ += reversal_for_return(earned, amount, returned, reversed_, part)
        returned += part
        assert reversed_ <= earned
        assert reversed_ == earned * returned // amount  # exactly the rounded-down share
