"""Building blocks shared by the resource schemas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import marshmallow as ma
from flask import current_app
from marshmallow import validate

#: The largest amount (minor units) or point change we accept: × points_per_unit (≤ 10^4) stays
#: far inside BIGINT.
MAX_AMOUNT = 10**12
#: The largest id (BIGINT); no integer field takes more.
MAX_ID = 2**63 - 1
#: Digits of the longest integer we read (in a body or a query string): one more than MAX_ID
#: has, so a number just too large still reaches its field and is refused there, by name.
MAX_INT_DIGITS = len(str(MAX_ID)) + 1

PROBLEM_MIMETYPE = "application/problem+json"


def unstorable(value: str) -> bool:
    """NUL (PostgreSQL text refuses it) or a lone surrogate (not encodable as UTF-8)."""
    return "\x00" in value or (
        not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value)
    )


class Schema(ma.Schema):
    """Unknown fields are refused, and so are strings no database can store (422
    validation_error naming the field)."""

    class Meta:
        unknown = ma.RAISE
        ordered = True

    @ma.pre_load
    def _refuse_unstorable_strings(self, data: Any, **_kwargs: Any) -> Any:
        errors: dict[str, list[str]] = {}

        def walk(path: str, value: Any) -> None:
            if isinstance(value, str):
                if unstorable(value):
                    errors[path] = ["Contains a NUL character or an invalid code point."]
            elif isinstance(value, dict):
                for key, sub in value.items():
                    walk(f"{path}.{key}" if path else str(key), sub)
            elif isinstance(value, list):
                for i, sub in enumerate(value):
                    walk(f"{path}.{i}" if path else str(i), sub)

        if isinstance(data, Mapping):
            walk("", dict(data))
        if errors:
            raise ma.ValidationError(errors)
        return data


#: An integer as a query string writes it: ASCII digits, perhaps a minus.
_INTEGER_TEXT = re.compile(rf"-?[0-9]{{1,{MAX_INT_DIGITS}}}")


class QueryArgs(Schema):
    """Arguments read from a query string, where every value is text: an integer field reads
    ASCII digits (`?member_id=3`), a boolean field `true` or `false`; anything else is refused
    by the field as in a body. Names the schema does not know pass by (flask-smorest reads
    `page` and `page_size` with a schema of its own)."""

    class Meta:
        unknown = ma.EXCLUDE

    @ma.pre_load
    def _read_text(self, data: Any, **_kwargs: Any) -> Any:
        fields = {f.data_key or name: f for name, f in self.load_fields.items()}
        values = {}
        for key in data:
            value, field = data[key], fields.get(key)
            if isinstance(value, str):
                if isinstance(field, ma.fields.Integer) and _INTEGER_TEXT.fullmatch(value):
                    value = int(value)
                elif isinstance(field, ma.fields.Boolean) and value in ("true", "false"):
                    value = value == "true"
            values[key] = value
        return values


def Str(max_len: int, **kwargs: object) -> ma.fields.String:
    return ma.fields.String(validate=validate.Length(max=max_len), **kwargs)  # type: ignore[arg-type]


#: How a card number is documented (OpenAPI leaves a format's name to us: `card-number` is
#: 8 to 19 digits ending in a Luhn check digit, spaces and dashes ignored).
CARD_NUMBER_DOC = {
    "format": "card-number",
    "description": "Card number: 8 to 19 digits ending in a Luhn check digit (spaces and "
    "dashes are ignored)",
    "example": "9900000000000002",
    "pattern": "^[ -]*([0-9][ -]*){8,19}$",
}
CARD_NUMBER_MAX_LENGTH = 40


def CardNumber(**kwargs: object) -> ma.fields.String:
    """Checked by the domain (422 invalid_card_number), so only the length is checked here."""
    metadata = {**CARD_NUMBER_DOC, **kwargs.pop("metadata", {})}  # type: ignore[dict-item]
    return ma.fields.String(
        validate=validate.Length(min=1, max=CARD_NUMBER_MAX_LENGTH),
        metadata=metadata,
        **kwargs,  # type: ignore[arg-type]
    )


def Id(**kwargs: object) -> ma.fields.Integer:
    return ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=MAX_ID), **kwargs)  # type: ignore[arg-type]


def date_bounds() -> tuple[date, date]:
    """The first and the last day a programme's dates may fall on (LOYALTY_MIN_DATE,
    LOYALTY_MAX_DATE; 2000-01-01 and 2100-12-31 by default)."""
    return current_app.config["LOYALTY_MIN_DATE"], current_app.config["LOYALTY_MAX_DATE"]


class _WithinProgrammeDates:
    """A date or time outside `date_bounds()` is refused (422 naming the field): what a
    programme can meaningfully hold, and what every computation on it (UTC conversion, the
    metrics' periods before and after) can represent."""

    default_error_messages: ma.types.ErrorMessages = {
        "out_of_range": "Must be from {first} to {last} (UTC)."
    }
    make_error: Any

    def _check_bounds(self, value: date | datetime) -> None:
        first, last = date_bounds()
        if isinstance(value, datetime):
            inside = (
                datetime.combine(first, time.min, UTC)
                <= value
                <= datetime.combine(last, time.max, UTC)
            )
        else:
            inside = first <= value <= last
        if not inside:
            raise self.make_error("out_of_range", first=first.isoformat(), last=last.isoformat())


class ProgrammeDate(_WithinProgrammeDates, ma.fields.Date):
    """`YYYY-MM-DD`, a UTC calendar day within the programme's dates (`date_bounds`)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> date:
        day = super()._deserialize(value, attr, data, **kwargs)
        self._check_bounds(day)
        return day


class ProgrammeDateTime(_WithinProgrammeDates, ma.fields.AwareDateTime):
    """ISO 8601 with an offset, within the programme's dates (`date_bounds`, in UTC); loaded
    as UTC, as it is stored and answered."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        self._check_bounds(moment)
        return moment.astimezone(UTC)


class StrictBoolean(ma.fields.Boolean):
    """JSON true/false only (marshmallow's Boolean also takes 0, 1, "yes", ...)."""

    def _deserialize(self, value: object, attr: object, data: object, **kwargs: object) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def Bool(**kwargs: object) -> ma.fields.Boolean:
    return StrictBoolean(**kwargs)  # type: ignore[arg-type]


MAX_REASON = 500


def _blank_is_none(value: Any) -> Any:
    # a blank reason longer than allowed is still too long (the document's maxLength)
    blank = isinstance(value, str) and len(value) <= MAX_REASON and not value.strip()
    return None if blank else value


class ReasonField(ma.fields.String):
    """Why staff did something, ≤ 500 characters; surrounding white space is dropped. A blank
    reason is not a reason: refused where one is required (422 naming the field), read as none
    where it is optional (`Reason(required=False)`)."""

    default_error_messages = {"blank": "A reason must say something: it is blank."}

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        sent = super()._deserialize(value, attr, data, **kwargs)
        validate.Length(max=MAX_REASON)(sent)  # as sent: the document's maxLength
        text = sent.strip()
        if not text:
            raise self.make_error("blank")
        return text


def Reason(*, required: bool = True, **kwargs: Any) -> ma.fields.String:
    if not required:  # "" or blank is no reason: documented as minLength 0
        kwargs.update(allow_none=True, pre_load=[_blank_is_none])
    length = validate.Length(min=1 if required else 0, max=MAX_REASON)
    return ReasonField(required=required, validate=length, **kwargs)


class BalanceSchema(Schema):
    points = ma.fields.Integer(required=True, metadata={"description": "Posted points"})
    held = ma.fields.Integer(required=True, metadata={"description": "Reserved by redemptions"})
    pending = ma.fields.Integer(
        required=True,
        metadata={"description": "Earned points not yet spendable (the programme's pending_days)"},
    )
    available = ma.fields.Integer(
        required=True, metadata={"description": "points - held - pending: what can be spent"}
    )


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, with our stable `code` and per-field `errors`."""

    type = ma.fields.String(required=True, metadata={"example": "urn:loyalty:problem:not_found"})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String(required=True)
    code = ma.fields.String(
        required=True, metadata={"description": "Stable machine-readable error code"}
    )
    errors = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        required=True,
        metadata={"description": "Messages per field at fault"},
    )
