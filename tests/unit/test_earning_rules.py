"""Earning rules, computed: each condition alone and combined, stacking and priority, caps,
budgets, exact multipliers, each line's points, and returns line by line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.earning import Rule, allocate, awards_for_purchase, reversal_for_lines


@dataclass(frozen=True)
class Rates:
    currency: str = "EUR"
    currency_exponent: int = 2
    points_per_unit: int = 1
    rounding: str = "down"


@dataclass(frozen=True)
class Tier:
    name: str
    multiplier: Decimal


EUR = Rates()
TUESDAY = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # 1 December 2026 is a Tuesday
LINES = [
    {"sku": "COFFEE", "category": "drinks", "quantity": 2, "unit_price": 300},
    {"sku": "BREAD", "category": "bakery", "quantity": 1, "unit_price": 400},
]


def rule(rule_id: int = 1, kind: str = "multiplier", value: str = "2", **fields) -> Rule:
    return Rule(id=rule_id, name=f"rule {rule_id}", kind=kind, value=Decimal(value), **fields)


def earn(amount: int = 1000, rules=(), at: datetime = TUESDAY, lines=None, **kwargs):
    return awards_for_purchase(
        EUR, amount_minor=amount, occurred_at=at, lines=lines, rules=rules, **kwargs
    )


def points(result) -> dict[str, int]:
    return {item["name"]: item["points"] for item in result.breakdown}


def test_without_rules_the_base_alone_is_explained() -> None:
    result = earn(1999)
    assert result.total == 19 and result.breakdown == [
        {"rule_id": None, "name": "base", "points": 19}
    ]
    assert [(a.kind, a.points) for a in result.awards] == [("earn", 19)]


def test_a_multiplier_adds_its_extra_on_the_whole_base_and_one_bonus_entry() -> None:
    result = earn(1000, [rule(value="2"), rule(2, "bonus_points", "5")])
    assert points(result) == {"base": 10, "rule 1": 10, "rule 2": 5} and result.total == 25
    assert [(a.kind, a.points) for a in result.awards] == [("earn", 10), ("bonus", 15)]
    assert result.breakdown[1] == {"rule_id": 1, "rule_version": 1, "name": "rule 1", "points": 10}


def test_a_decimal_multiplier_is_exact_and_rounded_down() -> None:
    # 1.1 as a float would give (1.1 - 1) × 30 = 2.9999…; exact: 3
    assert points(earn(3000, [rule(value="1.1")]))["rule 1"] == 3
    assert points(earn(1999, [rule(value="1.5")]))["rule 1"] == 9  # 0.5 × 19 = 9.5 → 9


@pytest.mark.parametrize(
    ("condition", "matches", "misses"),
    [
        ({"store_ids": frozenset({"S1"})}, {"store_id": "S1"}, {"store_id": "S2"}),
        ({"weekdays": frozenset({2})}, {"at": TUESDAY}, {"at": datetime(2026, 12, 2, tzinfo=UTC)}),
        (
            {"starts_at": datetime(2026, 12, 1), "ends_at": datetime(2026, 12, 2)},
            {"at": TUESDAY},
            {"at": datetime(2026, 12, 2, 0, 0, tzinfo=UTC)},  # the end is exclusive
        ),
        ({"min_spend": 1000}, {"amount": 1000}, {"amount": 999}),
        ({"tiers": frozenset({"gold"})}, {"tier": Tier("Gold", Decimal(1))}, {"tier": None}),
        (
            {"segments": frozenset({"loyal"})},
            {"member_segment": "loyal"},
            {"member_segment": "new"},
        ),
    ],
)
def test_each_purchase_condition_alone(condition, matches, misses) -> None:
    def run(case: dict):
        case = {"amount": 1000, **case}
        return points(earn(case.pop("amount"), [rule(**condition)], **case)).get("rule 1")

    assert run(matches) == 10
    assert run(misses) is None


def test_a_sku_rule_applies_to_its_lines_only_and_their_points_carry_it() -> None:
    result = earn(1000, [rule(skus=frozenset({"COFFEE"}), value="3")], lines=LINES)
    # base 10 split by value 600:400 → 6 and 4; × 3 on COFFEE adds 2 × 6 = 12
    assert points(result) == {"base": 10, "rule 1": 12}
    assert result.line_points == [18, 4] and sum(result.line_points) == result.total


def test_a_category_rule_and_a_bonus_on_a_category() -> None:
    result = earn(
        1000, [rule(categories=frozenset({"bakery"}), kind="bonus_points", value="50")], lines=LINES
    )
    assert points(result)["rule 1"] == 50 and result.line_points == [6, 54]
    none = earn(1000, [rule(categories=frozenset({"bakery"}))], lines=LINES[:1])
    assert "rule 1" not in points(none)
    assert "rule 1" not in points(earn(1000, [rule(skus=frozenset({"X"}))]))  # no lines


def test_conditions_combined_must_all_hold() -> None:
    combined = rule(
        store_ids=frozenset({"S1"}),
        weekdays=frozenset({2}),
        min_spend=500,
        categories=frozenset({"drinks"}),
    )
    assert points(earn(1000, [combined], store_id="S1", lines=LINES))["rule 1"] == 6
    assert "rule 1" not in points(earn(1000, [combined], store_id="S2", lines=LINES))
    assert "rule 1" not in points(earn(400, [combined], store_id="S1", lines=LINES))


def test_stackable_rules_add_and_among_the_others_the_best_single_one_wins() -> None:
    rules = [
        rule(1, value="2", stackable=False),  # +10
        rule(2, value="3", stackable=False),  # +20: the best non-stackable
        rule(3, "bonus_points", "7"),  # stackable: adds
    ]
    assert points(earn(1000, rules)) == {"base": 10, "rule 2": 20, "rule 3": 7}


def test_priority_orders_the_breakdown_and_breaks_a_tie() -> None:
    rules = [
        rule(1, "bonus_points", "5", stackable=False, priority=0),
        rule(2, "bonus_points", "5", stackable=False, priority=9),
        rule(3, "bonus_points", "1", priority=5),
    ]
    assert [i["rule_id"] for i in earn(1000, rules).breakdown] == [None, 2, 3]


def test_a_cap_then_the_budget_limit_what_a_rule_adds() -> None:
    capped = rule(value="5", max_points_per_purchase=15)
    assert points(earn(1000, [capped]))["rule 1"] == 15  # 40 capped at 15
    budgeted = rule(value="5", max_points_per_purchase=15, budget=100)
    result = earn(1000, [budgeted], budget_left={1: 6})
    assert points(result)["rule 1"] == 6 and result.budget_use == {1: 6}
    assert "rule 1" not in points(earn(1000, [budgeted], budget_left={1: 0}))
    # a spent budget lets the next best non-stackable rule win
    rules = [rule(1, value="5", budget=100, stackable=False), rule(2, value="2", stackable=False)]
    assert points(earn(1000, rules, budget_left={1: 0})) == {"base": 10, "rule 2": 10}


def test_the_tier_multiplier_comes_after_the_base() -> None:
    result = earn(1000, [rule(2, "bonus_points", "3")], tier=Tier("Gold", Decimal("1.25")))
    assert result.breakdown[1] == {"rule_id": None, "name": "tier Gold", "points": 2}
    assert result.total == 15 and sum(i["points"] for i in result.breakdown) == 15


def test_a_window_and_weekday_are_read_in_the_programmes_zone() -> None:
    """23:30 UTC on Tuesday 1 December is 00:30 on Wednesday in Amsterdam."""
    late = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    amsterdam = ZoneInfo("Europe/Amsterdam")
    wednesday = rule(weekdays=frozenset({3}))
    assert "rule 1" in points(earn(1000, [wednesday], at=late, zone=amsterdam))
    assert "rule 1" not in points(earn(1000, [wednesday], at=late))  # UTC: still Tuesday
    from_midnight = rule(starts_at=datetime(2026, 12, 2))  # wall clock: midnight there
    assert "rule 1" in points(earn(1000, [from_midnight], at=late, zone=amsterdam))
    assert "rule 1" not in points(
        earn(1000, [from_midnight], at=datetime(2026, 12, 1, 22, 59, tzinfo=UTC), zone=amsterdam)
    )
    instant = rule(starts_at=datetime(2026, 12, 2, tzinfo=UTC))  # with an offset: that instant
    assert "rule 1" not in points(earn(1000, [instant], at=late, zone=amsterdam))


@given(
    st.integers(0, 10**6),
    st.lists(st.integers(0, 10**5), min_size=1, max_size=8).filter(any),
)
def test_allocate_adds_up_and_each_share_is_within_one_of_exact(total, weights) -> None:
    shares = allocate(total, weights)
    assert sum(shares) == total
    for share, weight in zip(shares, weights, strict=True):
        exact = Decimal(total * weight) / sum(weights)
        assert exact - 1 < share < exact + 1


def test_a_returned_bonus_line_takes_back_its_bonus_cumulatively() -> None:
    bought = [("COFFEE", 2, 18), ("BREAD", 1, 4)]  # the result of the sku rule above
    assert reversal_for_lines(bought, [], [{"sku": "COFFEE", "quantity": 1}], 22, 0) == 9
    before = [{"sku": "COFFEE", "quantity": 1}]
    assert reversal_for_lines(bought, before, [{"sku": "COFFEE", "quantity": 1}], 22, 9) == 9
    assert reversal_for_lines(bought, [], [{"sku": "BREAD", "quantity": 1}], 22, 0) == 4
    # never more than is left to take back (an amount-only return took some already)
    assert reversal_for_lines(bought, [], [{"sku": "COFFEE", "quantity": 2}], 22, 10) == 12


def test_line_points_are_empty_when_the_lines_have_no_value() -> None:
    free = [{"sku": "GIFT", "quantity": 1, "unit_price": 0}]
    assert earn(1000, lines=free).line_points == []
