"""Earning rules, and the breakdown of what a purchase earns."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import marshmallow as ma
from marshmallow import validate

from loyalty.domain.segments import SEGMENTS
from loyalty.models import EARNING_RULE_KINDS
from loyalty.schemas.common import MAX_AMOUNT, Bool, Schema, Str, date_bounds
from loyalty.schemas.program import StrictNumber

#: A multiplier rule: more than 1, at most this, at most two decimals.
MAX_RULE_MULTIPLIER = 100
MAX_BONUS_POINTS = 10**9


class WallClockOrInstant(ma.fields.DateTime):
    """ISO 8601 date-time. Without an offset it is a wall-clock time in the programme's time
    zone (so 2026-12-24T00:00:00 is that midnight wherever the programme runs); with one, that
    instant. Within the programme's dates."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        first, last = date_bounds()
        day = (moment.astimezone(UTC) if moment.tzinfo else moment).date()
        if not first <= day <= last:
            raise ma.ValidationError(f"Must be from {first} to {last}.")
        return moment


class ConditionsSchema(Schema):
    """When a rule applies: every condition given must hold (an empty list or a missing one
    matches anything). `skus`/`categories` make the rule apply to the matching lines only."""

    store_ids = ma.fields.List(Str(100), validate=validate.Length(max=100))
    skus = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=64)),
        validate=validate.Length(max=1000),
    )
    categories = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=64)),
        validate=validate.Length(max=100),
    )
    weekdays = ma.fields.List(
        ma.fields.Integer(strict=True, validate=validate.Range(min=1, max=7)),
        validate=validate.Length(max=7),
        metadata={"description": "ISO weekdays, 1 Monday to 7 Sunday, in the programme's zone"},
    )
    starts_at = WallClockOrInstant(
        allow_none=True,
        metadata={"description": "From (inclusive); no offset: the programme's wall clock"},
    )
    ends_at = WallClockOrInstant(
        allow_none=True,
        metadata={"description": "Until (exclusive); no offset: the programme's wall clock"},
    )
    min_spend = ma.fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_AMOUNT),
        metadata={"description": "The purchase's amount paid at least this (minor units)"},
    )
    tiers = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=100)),
        validate=validate.Length(max=20),
        metadata={"description": "The member's tier (before the purchase) is one of these"},
    )
    segments = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(SEGMENTS)),
        validate=validate.Length(max=len(SEGMENTS)),
        metadata={"description": "The member's segment on the purchase's day is one of these"},
    )


class _RuleFields(Schema):
    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    kind = ma.fields.String(
        validate=validate.OneOf(EARNING_RULE_KINDS),
        metadata={"description": "multiplier: times the base; bonus_points: points added"},
    )
    value = StrictNumber(
        validate=[validate.Range(min=0, max=MAX_BONUS_POINTS, min_inclusive=False)],
        metadata={
            "description": "multiplier: more than 1, at most 100, two decimals (2, 1.5); "
            "bonus_points: a whole number of points",
            "example": 2,
        },
    )
    conditions = ma.fields.Nested(ConditionsSchema)
    max_points_per_purchase = ma.fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_BONUS_POINTS),
        metadata={"description": "The most points the rule adds to one purchase"},
    )
    priority = ma.fields.Integer(
        strict=True,
        validate=validate.Range(min=-1000, max=1000),
        metadata={"description": "Higher first in the breakdown, and wins a tie"},
    )
    stackable = Bool(
        metadata={"description": "false: among non-stackable rules the best single one wins"}
    )
    active = Bool()
    budget = ma.fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_AMOUNT),
        metadata={"description": "Total points the rule may give; it stops there exactly"},
    )

    @ma.validates_schema
    def _value_fits_kind(self, data: dict[str, Any], **_kwargs: object) -> None:
        value, kind = data.get("value"), data.get("kind")
        if value is None:
            return
        if kind == "bonus_points" and not isinstance(value, int):
            raise ma.ValidationError("bonus_points is a whole number of points.", "value")
        if kind == "multiplier":
            if not 1 < value <= MAX_RULE_MULTIPLIER:
                raise ma.ValidationError("A multiplier is more than 1, at most 100.", "value")
            if isinstance(value, float) and Decimal(repr(value)).as_tuple().exponent < -2:  # type: ignore[operator]
                raise ma.ValidationError("At most two decimals (1.25).", "value")


class EarningRuleCreateSchema(_RuleFields):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = ma.fields.String(
        required=True,
        validate=validate.OneOf(EARNING_RULE_KINDS),
        metadata={"description": "multiplier: times the base; bonus_points: points added"},
    )
    value = StrictNumber(
        required=True,
        validate=[validate.Range(min=0, max=MAX_BONUS_POINTS, min_inclusive=False)],
        metadata={
            "description": "multiplier: more than 1, at most 100, two decimals (2, 1.5); "
            "bonus_points: a whole number of points",
            "example": 2,
        },
    )


class EarningRuleUpdateSchema(_RuleFields):
    """The fields given replace the current ones (`conditions` as a whole); a new version."""


def _number(value: str) -> int | float:
    exact = Decimal(value)
    return int(exact) if exact == exact.to_integral_value() else float(exact)


class EarningRuleSchema(Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": list(EARNING_RULE_KINDS)})
    value = ma.fields.Function(
        lambda rule: _number(rule.value), required=True, metadata={"type": "number"}
    )
    conditions = ma.fields.Dict(
        required=True,
        metadata={"description": "The conditions given (times as sent, ISO 8601)"},
    )
    max_points_per_purchase = ma.fields.Integer(allow_none=True, required=True)
    priority = ma.fields.Integer(required=True)
    stackable = ma.fields.Boolean(required=True)
    active = ma.fields.Boolean(required=True)
    budget = ma.fields.Integer(allow_none=True, required=True)
    budget_used = ma.fields.Integer(required=True)
    budget_left = ma.fields.Integer(allow_none=True, required=True)
    version = ma.fields.Integer(
        required=True, metadata={"description": "Bumped by every change; purchases name it"}
    )
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class EarningRuleVersionSchema(Schema):
    version = ma.fields.Integer(required=True)
    definition = ma.fields.Dict(required=True)
    created_at = ma.fields.AwareDateTime(required=True)


class BreakdownItemSchema(Schema):
    """One part of what a purchase earned: the base, the tier, or a rule."""

    rule_id = ma.fields.Integer(allow_none=True, required=True)
    rule_version = ma.fields.Integer(
        metadata={"description": "The version of the rule that gave the points"}
    )
    name = ma.fields.String(
        required=True, metadata={"description": "base, tier <Name>, or the rule's name"}
    )
    points = ma.fields.Integer(required=True)
