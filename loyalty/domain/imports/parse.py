"""Reading an import file: the header, then each row checked and converted, nothing written.

Columns (a header row names them; order is free, other columns are ignored): `customer_ref` (the
retailer's own customer id), `external_id`, `occurred_at` (ISO date = 00:00 UTC, or date-time;
without an offset it is UTC), `amount`, and optional `currency` (must be the programme's) and
`store_id`. The columns are separated by `,`, `;` or a tab: the one that makes the header name
every required column (only one can), unless the caller gives it.

An amount is a number in major units, exact in the programme's currency, never rounded:

- with a decimal point (the default): `29.99`, `29.9`, `29`; no thousands separators (a comma
  is refused: `1,234` could be either);
- with a decimal comma (`decimal_comma`, a Dutch till's or Excel's): `29,99`, `1.234,50`,
  `1234,5`, `1.234`; a `.` separates thousands only, in groups of three (`1.23,50` is refused);
- digits 0-9 only (no sign, no currency symbol, no exponent); spaces around it are dropped;
- at most as many decimals as the currency has (EUR 2, JPY 0, KWD 3): `29.999` EUR is an
  error, not 30.00 or 29.99; not above the ceiling on a purchase (`Limits`, as a live one).

`occurred_at` lies within the programme's days (LOYALTY_MIN_DATE to LOYALTY_MAX_DATE, as a live
purchase's) and not more than a day ahead of now.

A row's points are what `earning.awards_for_purchase` gives a live purchase of that amount, time
and store: the base and the active earning rules (`earning_rules.for_import`: a row has no lines,
and its member is not known while it is read, so rules on skus, categories, tiers or segments do
not apply, nor do rules with a budget, which only a live purchase can count against exactly).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

from loyalty.domain import earning
from loyalty.domain.context import Limits

REQUIRED = ("customer_ref", "external_id", "occurred_at", "amount")
OPTIONAL = ("currency", "store_id")
DELIMITERS = (",", ";", "\t")
MAX_AMOUNT = 10**12
MAX_WHOLE_DIGITS = 15
MAX_CLOCK_SKEW = timedelta(hours=24)
ROW_ERROR = "__row__"  # the key a row that is no row (wrong width, not CSV) is reported under

#: (line, customer_ref, external_id, occurred_at, amount in minor units, store_id, points)
Row = tuple[int, str, str, datetime, int, str | None, int]


class ImportFileError(ValueError):
    """The file cannot be read as an import at all; the message names the line where it can."""


class HeaderError(ImportFileError):
    """No header, or one without a required column or naming one twice."""


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass(frozen=True)
class ProgramRates:
    """The programme's earning settings, read once (an ORM row would reload after each commit):
    its rates, time zone and the earning rules an import applies (`earning_rules.for_import`)."""

    currency: str
    currency_exponent: int
    points_per_unit: int
    rounding: str
    timezone: str = "UTC"
    rules: tuple[earning.Rule, ...] = ()

    @classmethod
    def of(cls, program: earning.Rates, rules: tuple[earning.Rule, ...] = ()) -> ProgramRates:
        return cls(
            program.currency,
            program.currency_exponent,
            program.points_per_unit,
            program.rounding,
            getattr(program, "timezone", None) or "UTC",
            rules,
        )


class CsvRows:
    """The data rows of a CSV file as (line number, {column: value}); the header row is line 1.
    A row of another width than the header's, or that the csv module cannot read, comes as
    {ROW_ERROR: message}. `delimiter`: None to take the one the header shows."""

    def __init__(self, handle: Iterable[str], delimiter: str | None = None) -> None:
        """Reads the header. Raises HeaderError."""
        lines = iter(handle)
        first = next(lines, "")
        if not first:
            raise HeaderError("the file is empty (a header row naming the columns is required)")
        self.delimiter_detected = delimiter is None
        self.delimiter = delimiter or _header_delimiter(first)
        self._reader = csv.reader(chain([first], lines), delimiter=self.delimiter)
        try:
            header = _cleaned(next(self._reader))
        except csv.Error as exc:
            raise HeaderError(f"line 1: the header cannot be read as CSV: {exc}") from None
        _check_header(header, self.delimiter, first)
        known = REQUIRED + OPTIONAL
        self._wanted = [(i, name) for i, name in enumerate(header) if name in known]
        self._width = len(header)
        self.ignored_columns = [h for h in header if h not in known]

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        reader, wanted, width = self._reader, self._wanted, self._width
        while True:
            try:
                for record in reader:
                    if not record:
                        continue  # a blank line
                    if len(record) != width:
                        message = f"{len(record)} fields, the header has {width}"
                        yield reader.line_num, {ROW_ERROR: message}
                        continue
                    yield reader.line_num, {name: record[i] for i, name in wanted}
                return
            except csv.Error as exc:  # the reader goes on with the next line
                yield reader.line_num, {ROW_ERROR: f"cannot be read as CSV: {exc}"}


def _cleaned(header: list[str]) -> list[str]:
    """Column names as compared: case and spaces around them ignored, and a byte-order mark
    left by the decoding (a file decoded as UTF-8 without `-sig`)."""
    names = [h.strip().lower() for h in header]
    if names and names[0].startswith("\ufeff"):
        names[0] = names[0][1:].strip()
    return names


def _names(line: str, delimiter: str) -> list[str]:
    """The header `line` split at `delimiter`: the column names, [] if it is no CSV at all."""
    try:
        return _cleaned(next(csv.reader([line], delimiter=delimiter)))
    except csv.Error:
        return []


def _header_delimiter(line: str) -> str:
    """The delimiter with which the header `line` names every required column (no column name
    holds a delimiter, so at most one can), else the one that splits it into most fields."""
    for delimiter in DELIMITERS:
        names = _names(line, delimiter)
        if all(column in names for column in REQUIRED):
            return delimiter
    return max(DELIMITERS, key=lambda d: len(_names(line, d)))


def _check_header(header: list[str], delimiter: str, line: str) -> None:
    """Raises HeaderError: a required column missing (and which delimiter would have found it,
    if one would), or a column named twice."""
    if not any(header):
        raise HeaderError("line 1: the header row is empty (it names the columns)")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        hint = ""
        other = _header_delimiter(line)
        if other != delimiter and all(c in _names(line, other) for c in REQUIRED):
            hint = f"; its columns are separated by {_shown(other)}, not {_shown(delimiter)}"
        raise HeaderError(
            f"line 1: the header lacks {', '.join(missing)} (it has {', '.join(header)}){hint}"
        )
    twice = sorted({c for c in REQUIRED + OPTIONAL if header.count(c) > 1})
    if twice:
        raise HeaderError(f"line 1: the header names {', '.join(twice)} more than once")


def _shown(delimiter: str) -> str:
    return "a tab" if delimiter == "\t" else repr(delimiter)


def _digits(text: str) -> bool:
    """Whether `text` is one or more of 0-9 (str.isdigit alone takes other scripts' digits)."""
    return text.isdigit() and text.isascii()


def _ungrouped(whole: str) -> str:
    """`1.234.567` → `1234567`: groups of three after the first of one to three; else ""."""
    groups = whole.split(".")
    if not 1 <= len(groups[0]) <= 3 or any(len(g) != 3 for g in groups[1:]):
        return ""
    return "".join(groups)


class RowParser:
    """Checks and converts one CSV row; every rule of the module docstring, nothing written."""

    def __init__(
        self,
        rates: ProgramRates,
        *,
        earn: bool,
        now: datetime,
        decimal_comma: bool = False,
        limits: Limits | None = None,
        days: tuple[date, date] | None = None,
    ) -> None:
        """`limits`: the ceiling on a purchase's amount (else MAX_AMOUNT); `days`: the first and
        the last day a programme's dates may fall on (LOYALTY_MIN_DATE, LOYALTY_MAX_DATE)."""
        self.rates = rates
        self.zone = ZoneInfo(rates.timezone)
        self.currency = rates.currency
        self.exponent = rates.currency_exponent
        self.scale = 10**self.exponent
        self.earn = earn
        self.decimal_comma = decimal_comma
        self.max_amount, self.over_max = MAX_AMOUNT, "is too large"
        if limits is not None:
            self.max_amount = limits.max_purchase_amount
            self.over_max = (
                f"is above the limit {Limits.setting('max_purchase_amount')} = {self.max_amount} "
                "(minor units)"
            )
        self.latest = now + MAX_CLOCK_SKEW
        self.earliest = datetime.min.replace(tzinfo=UTC)
        self.days = days
        if days is not None:
            self.earliest = datetime.combine(days[0], time(), tzinfo=UTC)
            self.latest = min(self.latest, datetime.combine(days[1], time.max, tzinfo=UTC))

    def amount(self, raw: str) -> int:
        """Minor units. Raises ValueError."""
        whole, fraction = self._split(raw.strip(), self.decimal_comma)
        if whole is None:
            raise ValueError(self._not_an_amount(raw))
        if len(fraction) > self.exponent:
            raise ValueError(
                f"{raw!r} has more decimals than {self.currency} has ({self.exponent})"
            )
        value = int(whole) * self.scale
        if fraction:
            value += int(fraction) * 10 ** (self.exponent - len(fraction))
        if value > self.max_amount:
            raise ValueError(f"{raw!r} {self.over_max}")
        return value

    @staticmethod
    def _split(text: str, decimal_comma: bool) -> tuple[str | None, str]:
        """(whole digits, decimal digits) of an amount's text, or (None, "") if it is none."""
        if decimal_comma:
            whole, separator, fraction = text.partition(",")
            if "." in whole:
                whole = _ungrouped(whole)
        else:
            whole, separator, fraction = text.partition(".")
        if not _digits(whole) or len(whole) > MAX_WHOLE_DIGITS:
            return None, ""
        if separator and not _digits(fraction):
            return None, ""
        return whole, fraction

    def _not_an_amount(self, raw: str) -> str:
        if self.decimal_comma:
            return f"{raw!r} is not a non-negative decimal amount like 29,99 or 1.234,50"
        message = f"{raw!r} is not a non-negative decimal amount like 29.99"
        if self._split(raw.strip(), True)[0] is not None:
            message += " (for decimal commas, as in 29,99, use --decimal-comma)"
        return message

    def occurred_at(self, raw: str) -> datetime:
        """A UTC datetime. Raises ValueError (not ISO, in the future, outside `days`)."""
        raw = raw.strip()
        try:
            if len(raw) == 10:
                at = datetime.combine(date.fromisoformat(raw), time(), tzinfo=UTC)
            else:
                at = datetime.fromisoformat(raw)
                at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        except ValueError:
            raise ValueError(
                f"{raw!r} is not an ISO date or date-time like 2026-03-01 or "
                "2026-03-01T10:00:00+01:00"
            ) from None
        except OverflowError:  # year 1 with a positive offset, 9999 with a negative one
            raise ValueError(f"{raw!r} is out of range") from None
        if at > self.latest or at < self.earliest:
            raise ValueError(self._out_of_bounds(raw, at))
        return at

    def _out_of_bounds(self, raw: str, at: datetime) -> str:
        if self.days is not None and at < self.earliest:
            return f"{raw!r} is before {self.days[0]}, the first day of the programme's dates"
        if self.days is not None and at.date() > self.days[1]:
            return f"{raw!r} is after {self.days[1]}, the last day of the programme's dates"
        return f"{raw!r} lies in the future"

    def points(self, amount: int, at: datetime, store_id: str | None) -> int:
        """What a live purchase of this amount, time and store earns (the base and the rules)."""
        if not self.earn:
            return 0
        return earning.awards_for_purchase(
            self.rates,
            amount_minor=amount,
            occurred_at=at,
            lines=None,
            store_id=store_id,
            rules=self.rates.rules,
            zone=self.zone,
        ).total

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
