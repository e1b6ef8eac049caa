"""Building blocks shared by the resource schemas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import marshmallow as ma
from marshmallow import validate

#: The largest amount (minor units) or point change we accept: × points_per_unit (≤ 10^4) stays
#: far inside BIGINT.
MAX_AMOUNT = 10**12

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


def Str(max_len: int, **kwargs: object) -> ma.fields.String:
    return ma.fields.String(validate=validate.Length(max=max_len), **kwargs)  # type: ignore[arg-type]


def CardNumber(**kwargs: object) -> ma.fields.String:
    """Checked by the domain (422 invalid_card_number), so only the length is checked here."""
    metadata = {
        "description": "Card number (digits, Luhn check digit; spaces and dashes are ignored)",
        "example": "9900000000000002",
        # documented, enforced by the domain so that any mistype is `invalid_card_number`
        "pattern": "^[0-9 -]+$",
        **kwargs.pop("metadata", {}),  # type: ignore[dict-item]
    }
    return ma.fields.String(
        validate=validate.Length(min=1, max=40),
        metadata=metadata,
        **kwargs,  # type: ignore[arg-type]
    )


def Id(**kwargs: object) -> ma.fields.Integer:
    return ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=2**63 - 1), **kwargs)  # type: ignore[arg-type]


class StrictBoolean(ma.fields.Boolean):
    """JSON true/false only (marshmallow's Boolean also takes 0, 1, "yes", ...)."""

    def _deserialize(self, value: object, attr: object, data: object, **kwargs: object) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def Bool(**kwargs: object) -> ma.fields.Boolean:
    return StrictBoolean(**kwargs)  # type: ignore[arg-type]


class BalanceSchema(Schema):
    points = ma.fields.Integer(required=True, metadata={"description": "Posted points"})
    held = ma.fields.Integer(required=True, metadata={"description": "Reserved by redemptions"})
    available = ma.fields.Integer(required=True, metadata={"description": "points - held"})


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
