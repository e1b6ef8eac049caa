"""The programme."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from loyalty.domain.program import currency_exponent
from loyalty.errors import ValidationFailed
from loyalty.models.program import ROUNDING_MODES
from loyalty.schemas.common import Schema


class ProgramSchema(Schema):
    name = ma.fields.String(required=True)
    currency = ma.fields.String(required=True, metadata={"example": "EUR"})
    currency_exponent = ma.fields.Integer(
        required=True, metadata={"description": "Minor-unit digits (EUR 2, JPY 0, BHD 3)"}
    )
    points_per_unit = ma.fields.Integer(
        required=True, metadata={"description": "Points per whole unit of currency paid"}
    )
    rounding = ma.fields.String(required=True, metadata={"enum": list(ROUNDING_MODES)})
    points_expire_after_days = ma.fields.Integer(allow_none=True, required=True)
    reservation_minutes = ma.fields.Integer(required=True)
    welcome_policy = ma.fields.Dict(allow_none=True, required=True)
    come_back_policy = ma.fields.Dict(allow_none=True, required=True)
    tiers = ma.fields.List(ma.fields.Dict(), required=True)


def _iso_4217(code: str) -> None:
    try:
        currency_exponent(code)
    except ValidationFailed as exc:
        raise ma.ValidationError(exc.detail) from None


class ProgramUpdateSchema(Schema):
    """The fields given replace the current ones; the others stay."""

    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    currency = ma.fields.String(
        validate=[validate.Regexp(r"^[A-Za-z]{3}$"), _iso_4217],
        metadata={"description": "ISO 4217 code with minor units", "example": "EUR"},
    )
    points_per_unit = ma.fields.Integer(strict=True, validate=validate.Range(min=0, max=10**4))
    rounding = ma.fields.String(validate=validate.OneOf(ROUNDING_MODES))
    points_expire_after_days = ma.fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=36500)
    )
    reservation_minutes = ma.fields.Integer(
        strict=True, validate=validate.Range(min=1, max=7 * 24 * 60)
    )
