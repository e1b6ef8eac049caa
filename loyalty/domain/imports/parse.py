"""Reading an import file: the header, then each row checked and converted, nothing written.

Columns (a header row names them; order is free, other columns are ignored): `customer_ref` (the
retailer's own customer id), `external_id`, `occurred_at` (ISO date = 00:00 UTC, or date-time;
without an offset it is UTC), `amount` (decimal in major units, exact: `29.99`; more decimals than
the currency has is an error), and optional `currency` (must be the programme's) and `store_id`.
A row's points are what `earning.awards_for_purchase` gives a live purchase of that amount, time
and store (its awards summed).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from loyalty.domain import earning

REQUIRED = ("customer_ref", "external_id", "occurred_at", "amount")
OPTIONAL = ("currency", "store_id")
MAX_AMOUNT = 10**12
MAX_CLOCK_SKEW = timedelta(hours=24)
WIDTH_ERROR = "__width__"  # the key a row of the wrong width is reported under
_AMOUNT = re.compile(r"^(\d{1,15})(?:\.(\d+))?$")

#: (line, customer_ref, external_id, occurred_at, amount in minor units, store_id, points)
Row = tuple[int, str, str, datetime, int, str | None, int]


class HeaderError(ValueError):
    """The file cannot be read as an import at all (no header, a required column missing)."""


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass(frozen=True)
class ProgramRates:
    """The programme's earning settings, read once (an ORM row would reload after each commit)."""

    currency: str
    currency_exponent: int
    points_per_unit: int
    rounding: str

    @classmethod
    def of(cls, program: earning.Rates) -> ProgramRates:
        return cls(
            program.currency, program.currency_exponent, program.points_per_unit, program.rounding
        )


class CsvRows:
    """The data rows of a CSV file as (line number, {column: value}); the header row is line 1.
    A row of another width than the header's comes as {WIDTH_ERROR: message}."""

    def __init__(self, handle: Iterable[str]) -> None:
        """Reads the header. Raises HeaderError."""
        self._reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(self._reader)]
        except StopIteration:
            raise HeaderError("the file is empty (a header row is required)") from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise HeaderError(f"the header lacks {', '.join(missing)} (it has {', '.join(header)})")
        known = REQUIRED + OPTIONAL
        self._wanted = [(i, name) for i, name in enumerate(header) if name in known]
        self._width = len(header)
        self.ignored_columns = [h for h in header if h not in known]

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        reader, wanted, width = self._reader, self._wanted, self._width
        for record in reader:
            if not record:
                continue  # a blank line
            if len(record) != width:
                message = f"{len(record)} fields, the header has {width}"
                yield reader.line_num, {WIDTH_ERROR: message}
                continue
            yield reader.line_num, {name: record[i] for i, name in wanted}


class RowParser:
    """Checks and converts one CSV row; every rule of the module docstring, nothing written."""

    def __init__(self, rates: ProgramRates, *, earn: bool, now: datetime) -> None:
        self.rates = rates
        self.currency = rates.currency
        self.exponent = rates.currency_exponent
        self.scale = 10**self.exponent
        self.earn = earn
        self.latest = now + MAX_CLOCK_SKEW

    def amount(self, raw: str) -> int:
        """Minor units. Raises ValueError."""
        match = _AMOUNT.match(raw.strip())
        if match is None:
            raise ValueError(f"{raw!r} is not a non-negative decimal amount like 29.99")
        whole, fraction = match.group(1), match.group(2) or ""
        if len(fraction) > self.exponent:
            raise ValueError(
                f"{raw!r} has more decimals than {self.currency} has ({self.exponent})"
            )
        value = int(whole) * self.scale + (
            int(fraction.ljust(self.exponent, "0")) if fraction else 0
        )
        if value > MAX_AMOUNT:
            raise ValueError(f"{raw!r} is too large")
        return value

    def occurred_at(self, raw: str) -> datetime:
        """A UTC datetime. Raises ValueError (not ISO, or in the future)."""
        raw = raw.strip()
        try:
            if len(raw) == 10:
                at = datetime.combine(date.fromisoformat(raw), time(), tzinfo=UTC)
            else:
                at = datetime.fromisoformat(raw)
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        except ValueError:
            raise ValueError(f"{raw!r} is not an ISO date or date-time") from None
        if at > self.latest:
            raise ValueError(f"{raw!r} lies in the future")
        return at

    def points(self, amount: int, at: datetime, store_id: str | None) -> int:
        """What a live purchase of this amount, time and store earns: the sum of its awards."""
        if not self.earn:
            return 0
        total = 0
        for award in earning.awards_for_purchase(
            self.rates, amount_minor=amount, occurred_at=at, lines=None, store_id=store_id
        ):
            total += award.points
        return total

    def parse(self, line: int, values: dict[str, str]) -> tuple[Row | None, list[RowError]]:
        """The row, or None and every error of the row (each field checked)."""
        try:  # the common case, a good row, without collecting anything
            raw_store = (values.get("store_id") or "").strip()
            currency = (values.get("currency") or "").strip().upper()
            if currency and currency != self.currency:
                raise ValueError(currency)
            amount = self.amount(values.get("amount") or "")
            at = self.occurred_at(values.get("occurred_at") or "")
            store_id = _text(raw_store, 100) if raw_store else None
            return (
                line,
                _text((values.get("customer_ref") or "").strip(), 100),
                _text(values.get("external_id") or "", 255),
                at,
                amount,
                store_id,
                self.points(amount, at, store_id),
            ), []
        except ValueError:
            return None, self._errors(line, values)

    def _errors(self, line: int, values: dict[str, str]) -> list[RowError]:
        errors: list[RowError] = []

        def check(name: str, convert: Callable[[str], Any]) -> None:
            try:
                convert(values.get(name) or "")
            except ValueError as exc:
                errors.append(RowError(line, name, str(exc)))

        check("customer_ref", lambda v: _text(v.strip(), 100))
        check("external_id", lambda v: _text(v, 255))
        check("occurred_at", self.occurred_at)
        check("amount", self.amount)
        check("store_id", lambda v: _text(v.strip(), 100) if v.strip() else None)
        currency = (values.get("currency") or "").strip().upper()
        if currency and currency != self.currency:
            errors.append(
                RowError(line, "currency", f"{currency} is not the programme's {self.currency}")
            )
        return errors


def _text(value: str, max_len: int) -> str:
    """Raises ValueError: empty, too long, or with a NUL."""
    if not value:
        raise ValueError("is empty")
    if len(value) > max_len:
        raise ValueError(f"is longer than {max_len} characters")
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    return value
