"""Metrics: names and meanings exactly as docs/metrics.md."""

from __future__ import annotations

import marshmallow as ma

from loyalty.schemas.common import Schema, Str


class PeriodArgs(Schema):
    class Meta:
        unknown = ma.EXCLUDE

    start = ma.fields.Date(required=True, metadata={"description": "YYYY-MM-DD, inclusive (UTC)"})
    end = ma.fields.Date(required=True, metadata={"description": "YYYY-MM-DD, inclusive (UTC)"})

    @ma.validates_schema
    def _ordered(self, data: dict, **_kwargs: object) -> None:
        if "start" in data and "end" in data:
            if data["end"] < data["start"]:
                raise ma.ValidationError("end is before start.", "end")
            if (data["end"] - data["start"]).days > 3660:
                raise ma.ValidationError("At most 10 years.", "end")


class RetentionArgs(PeriodArgs):
    store_id = Str(100, metadata={"description": "Only this store's purchases"})


def _rate(description: str) -> ma.fields.Float:
    return ma.fields.Float(allow_none=True, required=True, metadata={"description": description})


class RetentionSchema(Schema):
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


class CohortsSchema(Schema):
    start = ma.fields.Date(required=True)
    end = ma.fields.Date(required=True)
    cohorts = ma.fields.List(ma.fields.Nested(CohortSchema), required=True)
    definitions = ma.fields.String(required=True)
