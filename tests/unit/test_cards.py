"""Card numbers: Luhn check digit, normalisation, generation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.config import Config
from loyalty.domain.cards import (
    check_in_range,
    generate_card_number,
    luhn_check_digit,
    luhn_valid,
    normalise_card_number,
    parse_prefixes,
)
from loyalty.errors import CardNumberOutOfRange, InvalidCardNumber


@pytest.mark.parametrize(
    "number", ["79927398713", "4111111111111111", "9900000000000002", "0000000000"]
)
def test_luhn_accepts_known_valid_numbers(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["79927398710", "4111111111111112", "9900000000000003"])
def test_luhn_refuses_a_wrong_check_digit(number: str) -> None:
    assert not luhn_valid(number)


@given(
    st.text(alphabet="0123456789", min_size=7, max_size=18), st.integers(0, 17), st.integers(1, 9)
)
def test_luhn_catches_every_single_digit_typo(payload: str, position: int, delta: int) -> None:
    number = payload + luhn_check_digit(payload)
    i = position % len(number)
    typo = number[:i] + str((int(number[i]) + delta) % 10) + number[i + 1 :]
    assert luhn_valid(number)
    assert not luhn_valid(typo)


def test_normalise_strips_spaces_and_dashes() -> None:
    assert normalise_card_number(" 9900 0000-0000 0002 ") == "9900000000000002"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("9900000000000003", "check digit"),
        ("99000000000000AB", "digits only"),
        ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", "digits only"),  # full-width digits
        ("1234567", "8 to 19"),
        ("1" * 20, "8 to 19"),
        ("", "digits only"),
    ],
)
def test_normalise_refuses_with_invalid_card_number(raw: str, message: str) -> None:
    with pytest.raises(InvalidCardNumber) as err:
        normalise_card_number(raw)
    assert err.value.code == "invalid_card_number"
    assert err.value.status == 422
    assert message in err.value.errors["card_number"][0]


def test_generated_numbers_have_prefix_length_and_valid_check_digit() -> None:
    numbers = {generate_card_number("990", 16) for _ in range(200)}
    assert len(numbers) == 200
    for n in numbers:
        assert n.startswith("990") and len(n) == 16 and luhn_valid(n)


def test_generation_refuses_a_prefix_leaving_too_few_random_digits() -> None:
    with pytest.raises(ValueError):
        generate_card_number("99012345678", 16)


@pytest.mark.parametrize(
    ("raw", "prefixes"),
    [
        (None, ("990",)),
        ("", ("990",)),
        ("990", ("990",)),
        (" 990 , 5012 34,990 ", ("990", "501234")),
        (["990", "777"], ("990", "777")),
    ],
)
def test_card_prefixes_are_read_from_a_comma_separated_list(raw, prefixes) -> None:
    assert parse_prefixes(raw, "990") == prefixes


@pytest.mark.parametrize("raw", ["99a", "990,-1", "9" * 19])
def test_a_card_prefix_that_is_not_digits_stops_the_start(raw, tmp_path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="LOYALTY_CARD_PREFIXES"):
        parse_prefixes(raw, "990")
    monkeypatch.setenv("LOYALTY_CARD_PREFIXES", raw)
    with pytest.raises(ValueError, match="LOYALTY_CARD_PREFIXES"):
        Config(str(tmp_path))


def test_only_numbers_in_the_programmes_ranges_are_taken() -> None:
    assert check_in_range("9900000000000002", ("990",)) == "9900000000000002"
    assert check_in_range("5012340000000005", ("990", "501234")) == "5012340000000005"
    for number in ("4111111111111111", "9910000000000000", "0990000000000002"):
        with pytest.raises(CardNumberOutOfRange) as err:
            check_in_range(number, ("990", "501234"))
        assert (err.value.status, err.value.code) == (422, "card_number_out_of_range")
        assert list(err.value.errors) == ["card_number"]
        assert number not in err.value.detail and "990 or 501234" in err.value.detail
