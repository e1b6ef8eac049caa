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


class VoucherPolicySchema(Schema):
    kind = ma.fields.String(
        required=True,
        validate=validate.OneOf(["amount", "percent"]),
        metadata={"description": "amount: value in minor units; percent: 1-100"},
    )
    value = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=10**12)
    )
    valid_days = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=3650)
    )
    min_spend = ma.fields.Integer(
        strict=True, load_default=0, validate=validate.Range(min=0, max=10**12)
    )

    @ma.validates_schema
    def _percent_at_most_100(self, data: dict, **_kwargs: object) -> None:
        if data.get("kind") == "percent" and data.get("value", 0) > 100:
            raise ma.ValidationError("A percentage is at most 100.", "value")


class ComeBackPolicySchema(VoucherPolicySchema):
    min_purchase = ma.fields.Integer(
        strict=True, load_default=0, validate=validate.Range(min=0, max=10**12)
    )
    holdout_percent = ma.fields.Integer(
        strict=True,
        load_default=0,
        validate=validate.Range(min=0, max=100),
        metadata={"description": "Share of eligible members left without a voucher (control)"},
    )


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
    welcome_policy = ma.fields.Nested(
        VoucherPolicySchema, allow_none=True, metadata={"description": "null turns it off"}
    )
    come_back_policy = ma.fields.Nested(
        ComeBackPolicySchema, allow_none=True, metadata={"description": "null turns it off"}
    )
