"""The programme."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma
from marshmallow import validate

from loyalty.domain.program import currency_exponent
from loyalty.domain.tiers import DOWNGRADES as TIER_DOWNGRADES
from loyalty.domain.tiers import WINDOWS as TIER_WINDOWS
from loyalty.errors import ValidationFailed
from loyalty.models.program import ROUNDING_MODES
from loyalty.schemas.common import MAX_AMOUNT, Bool, QueryArgs, Schema, Str

#: Tier multipliers: more than 0, at most this, with at most two decimals (1.25).
MAX_TIER_MULTIPLIER = 100
MAX_TIERS = 20


class StrictNumber(ma.fields.Float):
    """A JSON number (integer or decimal), never a string or a boolean; kept as sent (2 stays
    2, 1.5 stays 1.5)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid", input=value)
        super()._deserialize(value, attr, data, **kwargs)  # refuses NaN and infinities
        return value

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return value


def _two_decimals_at_most(value: float) -> None:
    if Decimal(repr(value)).as_tuple().exponent < -2:  # type: ignore[operator]
        raise ma.ValidationError("At most two decimals (1.25).")


class TierSchema(Schema):
    """A tier: members whose qualifying spend reaches `qualifying_spend` earn `multiplier` times
    the base rate and get its `benefits`."""

    name = Str(100, required=True, metadata={"example": "Gold"})
    qualifying_spend = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"description": "Net spend (minor units) that reaches the tier", "example": 50000},
    )
    multiplier = StrictNumber(
        required=True,
        validate=[
            validate.Range(min=0, max=MAX_TIER_MULTIPLIER, min_inclusive=False),
            _two_decimals_at_most,
        ],
        metadata={"description": "Times the base earn rate (> 0, two decimals)", "example": 1.5},
    )
    benefits = ma.fields.List(
        Str(200),
        load_default=list,
        validate=validate.Length(max=20),
        metadata={"description": "What the tier offers, in words (for receipts and apps)"},
    )


EXPIRY_DAYS = validate.Range(min=1, max=36500)


class ExpiryPolicySchema(Schema):
    days = ma.fields.Integer(
        strict=True,
        required=True,
        validate=EXPIRY_DAYS,
        metadata={"description": "The same as points_expire_after_days"},
    )


class ExpiryPolicyField(ma.fields.Nested):
    """`expiry_policy`, the other spelling of `points_expire_after_days`: `{days}`, or null
    when points never expire. Read from `points_expire_after_days` (the programme, or the
    programme as a dry run would make it)."""

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = None) -> Any:
        days = getattr(obj, "points_expire_after_days", None)
        return None if days is None else {"days": days}


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
    expiry_policy = ExpiryPolicyField(
        ExpiryPolicySchema,
        allow_none=True,
        required=True,
        metadata={"description": "points_expire_after_days as {days}; null: never"},
    )
    pending_days = ma.fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "Earned points are pending (not spendable) for this many days"},
    )
    reservation_minutes = ma.fields.Integer(required=True)
    welcome_policy = ma.fields.Dict(allow_none=True, required=True)
    come_back_policy = ma.fields.Dict(allow_none=True, required=True)
    tiers = ma.fields.List(
        ma.fields.Nested(TierSchema),
        required=True,
        metadata={"description": "Ascending by qualifying_spend"},
    )
    tier_window = ma.fields.String(
        required=True,
        metadata={
            "enum": list(TIER_WINDOWS),
            "description": "The qualifying spend's window: the last 365 days, or the calendar "
            "year in the programme's time zone",
        },
    )
    tier_downgrade = ma.fields.String(
        required=True,
        metadata={
            "enum": list(TIER_DOWNGRADES),
            "description": "immediate: on a return and nightly; end_of_period: once the "
            "tier's period (plus tier_grace_days) is over, never because of a return",
        },
    )
    tier_grace_days = ma.fields.Integer(
        required=True, metadata={"description": "end_of_period: days a tier is kept after it"}
    )
    timezone = ma.fields.String(
        required=True,
        metadata={
            "description": "IANA time zone: the programme's days end at midnight there; "
            "earning rules' weekdays and windows are read there",
            "example": "Europe/Amsterdam",
        },
    )


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
        strict=True, required=True, validate=validate.Range(min=1, max=MAX_AMOUNT)
    )
    valid_days = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(min=1, max=3650)
    )
    min_spend = ma.fields.Integer(
        strict=True, load_default=0, validate=validate.Range(min=0, max=MAX_AMOUNT)
    )

    @ma.validates_schema
    def _percent_at_most_100(self, data: dict, **_kwargs: object) -> None:
        if data.get("kind") == "percent" and data.get("value", 0) > 100:
            raise ma.ValidationError("A percentage is at most 100.", "value")


class ComeBackPolicySchema(VoucherPolicySchema):
    min_purchase = ma.fields.Integer(
        strict=True, load_default=0, validate=validate.Range(min=0, max=MAX_AMOUNT)
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
        strict=True,
        allow_none=True,
        validate=EXPIRY_DAYS,
        metadata={
            "description": "Each credit's points lapse at the end of the day (midnight in the "
            "programme's time zone) this many days after it; null: never"
        },
    )
    expiry_policy = ma.fields.Nested(
        ExpiryPolicySchema,
        allow_none=True,
        metadata={
            "description": "The other spelling of points_expire_after_days: {days}, or null "
            "for never. Sent with it (as GET gives both), the one that changes the current "
            "setting wins; both changing it to different values is refused"
        },
    )
    pending_days = ma.fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=365),
        metadata={
            "description": "Earned points become spendable at the end of the day this many "
            "days after the earning (a return before then cancels them); null: at once"
        },
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
    currency_exponent = ma.fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=4),  # ISO 4217 minor units: 0 (JPY) to 4 (CLF)
        metadata={
            "description": "Read-only, it follows currency: accepted when it is the current "
            "value (as GET gives it) or the new currency's; anything else is refused"
        },
    )
    tier_window = ma.fields.String(validate=validate.OneOf(TIER_WINDOWS))
    tier_downgrade = ma.fields.String(validate=validate.OneOf(TIER_DOWNGRADES))
    tier_grace_days = ma.fields.Integer(strict=True, validate=validate.Range(min=0, max=366))
    tiers = ma.fields.List(
        ma.fields.Nested(TierSchema),
        validate=validate.Length(max=MAX_TIERS),
        metadata={
            "description": "The whole tier table (replaces the current one; [] for none): "
            "unique names, qualifying_spend strictly ascending"
        },
    )
    timezone = ma.fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "IANA time zone name", "example": "Europe/Amsterdam"},
    )


class TierMoveSchema(Schema):
    member_id = ma.fields.Integer(required=True)
    from_tier = ma.fields.String(allow_none=True, required=True)
    to_tier = ma.fields.String(allow_none=True, required=True)
    spend = ma.fields.Integer(required=True, metadata={"description": "Net spend counted"})


class ProgramUpdateResultSchema(ProgramSchema):
    """The programme after a PUT; with `?dry_run=true` the programme as it would be and the
    members whose tier the change would move (the two `tier_moves` fields: only then)."""

    tier_moves_count = ma.fields.Integer(
        metadata={"description": "dry_run only: how many members would change tier"}
    )
    tier_moves = ma.fields.List(
        ma.fields.Nested(TierMoveSchema),
        metadata={
            "description": "dry_run only: the first 1000 of them, by member id ([] when the "
            "tier table, tier policy and time zone stay as they are)"
        },
    )


class ProgramUpdateArgs(QueryArgs):
    dry_run = Bool(
        load_default=False,
        metadata={"description": "Check the change and list who would move; write nothing"},
    )
