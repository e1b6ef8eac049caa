"""Card numbers: digits with a Luhn check digit, so a mistyped number is caught at the till."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from loyalty.errors import CardNumberOutOfRange, InvalidCardNumber

MIN_LENGTH = 8
MAX_LENGTH = 19


def luhn_check_digit(payload: str) -> str:
    """The digit that makes `payload + digit` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # doubled: the rightmost payload digit sits next to the check digit
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and len(number) >= 2 and luhn_check_digit(number[:-1]) == number[-1]


def normalise_card_number(raw: str) -> str:
    """Strip spaces and dashes and check digits, length and check digit.

    Raises InvalidCardNumber (422 `invalid_card_number`, field `card_number`).
    """
    number = "".join(raw.split()).replace("-", "")
    if not number.isascii() or not number.isdigit():
        raise InvalidCardNumber("A card number has digits only.", field="card_number")
    if not MIN_LENGTH <= len(number) <= MAX_LENGTH:
        raise InvalidCardNumber(
            f"A card number has {MIN_LENGTH} to {MAX_LENGTH} digits.", field="card_number"
        )
    if not luhn_valid(number):
        raise InvalidCardNumber(
            "The check digit does not match: the number was mistyped.", field="card_number"
        )
    return number


def parse_prefixes(raw: str | Iterable[str] | None, default: str) -> tuple[str, ...]:
    """The card ranges of LOYALTY_CARD_PREFIXES: comma-separated digit prefixes ("990,4000 12");
    spaces inside one are ignored; none given: `default` (the programme's own prefix).

    Raises ValueError for an entry that is not digits (a configuration error, at start-up).
    """
    entries = raw.split(",") if isinstance(raw, str) else list(raw or ())
    prefixes = tuple(dict.fromkeys("".join(str(e).split()) for e in entries if str(e).strip()))
    bad = [p for p in prefixes if not (p.isascii() and p.isdigit() and len(p) < MAX_LENGTH)]
    if bad:
        raise ValueError(f"LOYALTY_CARD_PREFIXES: {', '.join(bad)} is not a digit prefix")
    return prefixes or (default,)


def check_in_range(number: str, prefixes: Iterable[str]) -> str:
    """A pre-printed card's (normalised) number must start with one of the programme's
    prefixes, so a bank card or another scheme's number typed at the till is never taken (or
    stored). The number is not repeated in the message: it may be a payment card.

    Raises CardNumberOutOfRange (422 `card_number_out_of_range`, field `card_number`).
    """
    allowed = tuple(prefixes)
    if not number.startswith(allowed):
        raise CardNumberOutOfRange(
            "This number is not one of the programme's cards: its numbers start with "
            f"{' or '.join(allowed)}.",
            field="card_number",
        )
    return number


def generate_card_number(prefix: str, length: int) -> str:
    """A random number of `length` digits starting with `prefix`, ending in a Luhn digit."""
    random_digits = length - 1 - len(prefix)
    if not prefix.isdigit() or random_digits < 6:
        raise ValueError("card prefix must be digits leaving at least 6 random digits")
    body = prefix + "".join(str(secrets.randbelow(10)) for _ in range(random_digits))
    return body + luhn_check_digit(body)
