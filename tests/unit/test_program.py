"""The programme record."""

from __future__ import annotations

import pytest

from loyalty.domain import program
from loyalty.domain.context import Actor
from loyalty.errors import CurrencyMismatch, ValidationFailed


@pytest.mark.parametrize(("code", "exponent"), [("EUR", 2), ("jpy", 0), ("BHD", 3), ("CLF", 4)])
def test_currency_exponent_comes_from_iso_4217(code: str, exponent: int) -> None:
    assert program.currency_exponent(code) == exponent


@pytest.mark.parametrize("code", ["XXZ", "XAU"])
def test_unknown_or_unitless_currency_is_refused(code: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        program.currency_exponent(code)
    assert "currency" in err.value.errors


def test_migration_seeds_the_default_programme(session) -> None:
    p = program.get_program(session)
    assert (p.currency, p.currency_exponent, p.points_per_unit, p.rounding) == ("EUR", 2, 1, "down")
    assert p.reservation_minutes == 15


def test_update_sets_the_exponent_with_the_currency(session) -> None:
    p = program.update_program(session, {"currency": "jpy", "points_per_unit": 2}, Actor.cli())
    assert (p.currency, p.currency_exponent, p.points_per_unit) == ("JPY", 0, 2)
    program.check_currency(p, "jpy")
    with pytest.raises(CurrencyMismatch):
        program.check_currency(p, "EUR")
