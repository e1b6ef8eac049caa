"""Metrics: names and meanings exactly as docs/metrics.md."""

from __future__ import annotations

import marshmallow as ma

from loyalty.schemas.common import ProgrammeDate, QueryArgs, Schema, Str

#: The longest period the metrics compute, in days (ten years).
MAX_PERIOD_DAYS = 3660


class PeriodArgs(QueryArgs):
    start = ProgrammeDate(
        required=True, metadata={"description": "YYYY-MM-DD, a UTC day; the period includes it"}
    )
    end = ProgrammeDate(
        required=True,
        metadata={
            "description": "YYYY-MM-DD, a UTC day; the period includes it. Not before start, "
            f"at most {MAX_PERIOD_DAYS} days after it"
        },
    )

    @ma.validates_schema
    def _ordered(self, data: dict, **_kwargs: object) -> None:
        if "start" in data and "end" in data:
            if data["end"] < data["start"]:
                raise ma.ValidationError("end is before start.", "end")
            if (data["end"] - data["start"]).days > MAX_PERIOD_DAYS:
                raise ma.ValidationError(f"At most {MAX_PERIOD_DAYS} days (10 years).", "end")


class RetentionArgs(PeriodArgs):
    store_id = Str(100, metadata={"description": "Only this store's purchases"})


def _rate(description: str) -> ma.fields.Float:
    return ma.fields.Float(allow_none=True, required=True, metadata={"description": description})


class ReadFromSchema(Schema):
    """Where every metrics answer was read from (LOYALTY_READ_DATABASE_URL)."""

    read_from = ma.fields.String(
        required=True,
        metadata={"description": "primary, or replica when a read replica is configured"},
    )
    replica_lag_seconds = ma.fields.Float(
        allow_none=True,
        required=True,
        metadata={
            "description": "How far behind the primary the replica was (seconds; 0 when it had "
            "replayed all it received); null when read from the primary"
        },
    )


class RetentionSchema(ReadFromSchema):
    start = ma.fields.Date(required=True)
    end = ma.fields.Date(required=True)
    store_id = ma.fields.String(allow_none=True)
    customers_at_start = ma.fields.Integer(required=True)
    active_customers = ma.fields.Integer(required=True)
    new_customers = ma.fields.Integer(required=True)
    retained_customers = ma.fields.Integer(required=True)
    lost_customers = ma.fields.Integer(required=True)
    reactivated_customers = ma.fields.Integer(required=True)
    purchases = ma.fields.Integer(required=True)
    revenue = ma.fields.Integer(required=True, metadata={"description": "Minor units"})
    returned_amount = ma.fields.Integer(required=True)
    repeat_customers = ma.fields.Integer(required=True)
    one_time_customers = ma.fields.Integer(required=True)
    retention_rate = _rate("retained / customers_at_start, 4 decimals")
    churn_rate = _rate("lost / customers_at_start, 4 decimals")
    repeat_customer_rate = _rate("repeat / active, 4 decimals")
    purchase_frequency = _rate("purchases / active, 4 decimals")
    average_order_value = _rate("revenue / purchases, minor units, 2 decimals")
    customer_lifetime_value = _rate("AOV × frequency ÷ churn, 4 decimals; null when churn is 0")
    definitions = ma.fields.String(required=True)


class CohortSchema(Schema):
    cohort = ma.fields.String(required=True, metadata={"example": "2026-01"})
    size = ma.fields.Integer(required=True)
    retention = ma.fields.List(
        ma.fields.Float(allow_none=True),
        required=True,
        metadata={"description": "k-th month after the cohort month; [0] = 1.0; 4 decimals"},
    )


class CohortsSchema(ReadFromSchema):
    start = ma.fields.Date(required=True)
    end = ma.fields.Date(required=True)
    cohorts = ma.fields.List(ma.fields.Nested(CohortSchema), required=True)
    definitions = ma.fields.String(required=True)


class ResponsesSchema(Schema):
    total = ma.fields.Integer(required=True, metadata={"description": "Feedback records"})
    nps = ma.fields.Integer(required=True, metadata={"description": "NPS answers"})
    ces = ma.fields.Integer(required=True, metadata={"description": "CES answers"})
    csat = ma.fields.Integer(required=True, metadata={"description": "CSAT answers"})


class FeedbackMetricsSchema(ReadFromSchema):
    start = ma.fields.Date(required=True)
    end = ma.fields.Date(required=True)
    nps = _rate("% answers 9-10 minus % answers 0-6, -100 to 100, 1 decimal")
    ces_average = _rate("Mean CES answer, 1 (very little effort) to 7, 2 decimals")
    csat = _rate("% of CSAT answers 4-5, 1 decimal")
    responses = ma.fields.Nested(ResponsesSchema, required=True)
    promoters = ma.fields.Integer(required=True, metadata={"description": "NPS answers 9-10"})
    passives = ma.fields.Integer(required=True, metadata={"description": "NPS answers 7-8"})
    detractors = ma.fields.Integer(required=True, metadata={"description": "NPS answers 0-6"})
    definitions = ma.fields.String(required=True)


class SegmentArgs(QueryArgs):
    as_of = ProgrammeDate(
        required=True, metadata={"description": "YYYY-MM-DD (UTC): the window ends with this day"}
    )


def _count(description: str) -> ma.fields.Integer:
    return ma.fields.Integer(required=True, metadata={"description": description})


class SegmentCountsSchema(Schema):
    lost = _count("Had purchases, none in the last 365 days")
    at_risk = _count("Latest NPS <= 6 or CES >= 5, or no purchase in the last 90 days")
    new = _count("First purchase ever in the last 90 days")
    ambassador = _count("Latest NPS >= 9 and >= 2 purchases")
    deal_seeker = _count(">= 2 purchases, at least half with a voucher or a reward")
    loyal = _count(">= 2 purchases")
    occasional = _count("Everyone else with a purchase in the window")


class SegmentsSchema(SegmentCountsSchema, ReadFromSchema):
    as_of = ma.fields.Date(required=True)
    segments = ma.fields.Nested(SegmentCountsSchema, required=True)
    members = _count("Members counted (those with a purchase up to as_of)")
    definitions = ma.fields.String(required=True)


class HoldoutSchema(Schema):
    campaigns = ma.fields.List(ma.fields.String(), required=True)
    treated = _count("Vouchers issued in campaigns that had a holdout")
    treated_bought = _count("... whose member bought within the voucher's validity")
    treated_rate = _rate("treated_bought / treated, 4 decimals")
    holdout = _count("Members held out (each a record with the validity they would have had)")
    holdout_bought = _count("... who bought within that validity")
    holdout_rate = _rate("holdout_bought / holdout, 4 decimals")
    uplift = _rate("treated_rate - holdout_rate, 4 decimals")
    ci_low = _rate("95% confidence interval of the uplift (Wald), lower end")
    ci_high = _rate("95% confidence interval of the uplift (Wald), upper end")
    z = _rate("Two-proportion z statistic (pooled)")
    p_value = _rate("Two-sided p-value of z")


class VoucherKindMetricsSchema(Schema):
    kind = ma.fields.String(
        required=True, metadata={"enum": ["come_back", "welcome", "win_back", "goodwill"]}
    )
    issued = _count("Vouchers of this kind issued in the period")
    redeemed = _count("... of which used")
    redemption_rate = _rate("redeemed / issued, 4 decimals")
    came_back = _count("... whose member made a purchase after the issue")
    median_days_to_next_purchase = _rate("Median days from issue to that next purchase")
    holdout = ma.fields.Nested(HoldoutSchema, allow_none=True, required=True)


class VoucherMetricsSchema(ReadFromSchema):
    start = ma.fields.Date(required=True)
    end = ma.fields.Date(required=True)
    kinds = ma.fields.List(ma.fields.Nested(VoucherKindMetricsSchema), required=True)
    definitions = ma.fields.String(required=True)


class PointsFlowsSchema(Schema):
    issued = ma.fields.Integer(required=True, metadata={"description": "earn + bonus entries"})
    redeemed = ma.fields.Integer(required=True, metadata={"description": "redeem entries"})
    expired = ma.fields.Integer(required=True, metadata={"description": "expire entries"})
    reversed = ma.fields.Integer(
        required=True, metadata={"description": "reverse entries of returns"}
    )
    adjusted = ma.fields.Integer(
        required=True, metadata={"description": "adjust entries, signed (staff corrections)"}
    )


class PointsMonthSchema(PointsFlowsSchema):
    month = ma.fields.String(required=True, metadata={"example": "2026-11"})
    outstanding = ma.fields.Integer(required=True, metadata={"description": "At the month's end"})


class PointsMetricsSchema(PointsFlowsSchema, ReadFromSchema):
    start = ma.fields.Date(required=True)
    end = ma.fields.Date(required=True)
    outstanding_at_start = ma.fields.Integer(required=True)
    outstanding = ma.fields.Integer(
        required=True, metadata={"description": "All members' points at the end of `end`"}
    )
    value_per_point = ma.fields.Float(
        allow_none=True,
        required=True,
        metadata={"description": "The rewards' rate (minor units per point), 4 decimals"},
    )
    outstanding_value = ma.fields.Integer(
        allow_none=True,
        required=True,
        metadata={"description": "The liability: outstanding at the rewards' rate (minor units)"},
    )
    months = ma.fields.List(ma.fields.Nested(PointsMonthSchema), required=True)
