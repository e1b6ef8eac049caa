"""The tier rules without a database: the table, the windows, what is held and until when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from loyalty.domain.tiers import Policy, decide, rank, tier_for, tier_view

TABLE = [
    {"name": "Silver", "qualifying_spend": 10000, "multiplier": 1.25},
    {"name": "Gold", "qualifying_spend": 50000, "multiplier": 1.5},
]
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spend", "tier"),
    [
        (0, None),
        (9999, None),
        (10000, "Silver"),
        (49999, "Silver"),
        (50000, "Gold"),
        (10**9, "Gold"),
    ],
)
def test_tier_for_is_the_highest_tier_the_spend_reaches(spend: int, tier: str | None) -> None:
    assert tier_for(spend, TABLE) == tier


def test_ranks_and_the_view_earning_reads() -> None:
    assert [rank(n, TABLE) for n in (None, "Silver", "Gold", "Bronze")] == [-1, 0, 1, -1]
    assert tier_view(TABLE, "Silver") == tier_view(TABLE, "Silver")
    view = tier_view(TABLE, "Silver")
    assert view is not None and view.multiplier == Decimal("1.25")  # exact, not 1.25 as a float
    assert tier_view(TABLE, "Bronze") is None and tier_view([], None) is None


def test_the_rolling_window_and_the_calendar_year_in_the_programmes_zone() -> None:
    rolling = Policy(tiers=TABLE)
    assert rolling.window_start(NOW) == NOW - timedelta(days=365)
    calendar = Policy(tiers=TABLE, window="calendar_year", timezone="America/New_York")
    assert calendar.window_start(NOW) == datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
    # 1 January 03:00 UTC is still 31 December in New York: the year before
    assert calendar.window_start(datetime(2026, 1, 1, 3, tzinfo=UTC)) == datetime(
        2025, 1, 1, 5, 0, tzinfo=UTC
    )
    # the window ending exactly at a year's start is the year just ended
    assert calendar.window_start(datetime(2026, 1, 1, 5, tzinfo=UTC)) == datetime(
        2025, 1, 1, 5, 0, tzinfo=UTC
    )


def test_held_until_by_window_and_grace() -> None:
    assert Policy(tiers=TABLE).held_until(NOW) is None  # immediate: not held
    rolling = Policy(tiers=TABLE, downgrade="end_of_period", grace_days=7)
    assert rolling.held_until(NOW) == NOW + timedelta(days=372)
    calendar = Policy(
        tiers=TABLE,
        window="calendar_year",
        downgrade="end_of_period",
        grace_days=31,
        timezone="Europe/Amsterdam",
    )
    # reached in 2026: held through 2027, plus 31 days (midnight in Amsterdam)
    assert calendar.held_until(NOW) == datetime(2028, 1, 31, 23, 0, tzinfo=UTC)
    assert calendar.held_until(NOW, from_last_year=True) == datetime(2027, 1, 31, 23, 0, tzinfo=UTC)


def test_a_purchase_only_raises() -> None:
    immediate = Policy(tiers=TABLE)
    assert decide(immediate, None, None, 10000, NOW, may_lower=False) == ("Silver", None)
    assert decide(immediate, "Gold", None, 0, NOW, may_lower=False) is None
    assert decide(immediate, "Silver", None, 20000, NOW, may_lower=False) is None


def test_immediate_follows_the_spend_both_ways() -> None:
    immediate = Policy(tiers=TABLE)
    assert decide(immediate, "Gold", None, 49999, NOW) == ("Silver", None)
    assert decide(immediate, "Silver", None, 9999, NOW) == (None, None)
    assert decide(immediate, "Silver", None, 10000, NOW) is None
    # a tier the table no longer has is replaced
    assert decide(immediate, "Bronze", None, 0, NOW) == (None, None)
    # switched from end_of_period: the held date goes
    assert decide(immediate, "Silver", NOW, 20000, NOW) == ("Silver", None)


def test_end_of_period_holds_the_tier_to_the_end_of_its_period() -> None:
    policy = Policy(tiers=TABLE, downgrade="end_of_period")
    held = NOW + timedelta(days=30)
    assert decide(policy, "Gold", held, 0, NOW) is None
    assert decide(policy, "Gold", held, 0, held - timedelta(microseconds=1)) is None
    # the period over: what the spend reaches then, held for a new period
    assert decide(policy, "Gold", held, 20000, held) == ("Silver", held + timedelta(days=365))
    assert decide(policy, "Gold", held, 0, held) == (None, None)
    assert decide(policy, "Gold", held, 60000, held) == ("Gold", held + timedelta(days=365))
    # raised at once, also while held
    assert decide(policy, "Silver", held, 60000, NOW) == ("Gold", NOW + timedelta(days=365))
    # a tier without a held date (the policy was just switched) is held from now
    assert decide(policy, "Gold", None, 0, NOW) == ("Gold", NOW + timedelta(days=365))
    # a tier the table no longer has is replaced at once
    assert decide(policy, "Bronze", held, 20000, NOW) == ("Silver", NOW + timedelta(days=365))


def test_end_of_period_calendar_year_keeps_a_tier_on_last_years_spend() -> None:
    policy = Policy(
        tiers=TABLE, window="calendar_year", downgrade="end_of_period", timezone="Europe/Amsterdam"
    )
    new_year = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)  # 1 January 2027 in Amsterdam
    end_2027 = datetime(2027, 12, 31, 23, 0, tzinfo=UTC)
    assert decide(policy, "Gold", new_year, 0, new_year, last_year=50000) == ("Gold", end_2027)
    assert decide(policy, "Gold", new_year, 0, new_year, last_year=10000) == ("Silver", end_2027)
    assert decide(policy, "Gold", new_year, 0, new_year, last_year=0) == (None, None)
