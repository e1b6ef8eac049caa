"""/metrics: retention, cohorts, feedback, segments and vouchers (docs/metrics.md), read from the
replica when one is configured (loyalty.readdb); every answer says where it was read from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.views import MethodView
from sqlalchemy.orm import Session

from loyalty import auth, readdb
from loyalty.api.base import LoyaltyBlueprint
from loyalty.domain import feedback, lots, metrics, segments
from loyalty.schemas.metrics import (
    CohortsSchema,
    FeedbackMetricsSchema,
    PeriodArgs,
    PointsMetricsSchema,
    RetentionArgs,
    RetentionSchema,
    SegmentArgs,
    SegmentsSchema,
    VoucherMetricsSchema,
)

blp = LoyaltyBlueprint("metrics", __name__, description="Retention metrics (docs/metrics.md)")


def _read(compute: Callable[[Session], dict[str, Any]]) -> dict[str, Any]:
    """`compute` on the session the metrics read from, its answer stamped with where that was."""
    answer, source = readdb.read(compute)
    return source.stamp(answer)


@blp.route("/metrics/retention")
class Retention(MethodView):
    @auth.require("reports", "admin")
    @blp.arguments(RetentionArgs(), location="query")
    @blp.response(200, RetentionSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Customers at start, active, new, retained, lost, reactivated, and the rates"""
        return _read(
            lambda s: metrics.retention(
                s, args["start"], args["end"], store_id=args.get("store_id")
            )
        )


@blp.route("/metrics/cohorts")
class Cohorts(MethodView):
    @auth.require("reports", "admin")
    @blp.arguments(PeriodArgs(), location="query")
    @blp.response(200, CohortsSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Monthly cohorts (month of first purchase) and their retention month by month"""
        return _read(lambda s: metrics.cohorts(s, args["start"], args["end"]))


@blp.route("/metrics/feedback")
class FeedbackMetrics(MethodView):
    @auth.require("reports", "admin")
    @blp.arguments(PeriodArgs(), location="query")
    @blp.response(200, FeedbackMetricsSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """NPS, CES and CSAT over the feedback given in the period"""
        return _read(lambda s: feedback.metrics(s, args["start"], args["end"]))


@blp.route("/metrics/segments")
class Segments(MethodView):
    @auth.require("reports", "admin")
    @blp.arguments(SegmentArgs(), location="query")
    @blp.response(200, SegmentsSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Members per segment as of a day (each member in exactly one; first match wins)"""
        return _read(lambda s: segments.segment_counts(s, args["as_of"]))


@blp.route("/metrics/vouchers")
class VoucherMetrics(MethodView):
    @auth.require("reports", "admin")
    @blp.arguments(PeriodArgs(), location="query")
    @blp.response(200, VoucherMetricsSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Per voucher kind: issued, redeemed, days to the next purchase, uplift over holdout"""
        return _read(lambda s: metrics.vouchers(s, args["start"], args["end"]))


@blp.route("/metrics/points")
class PointsMetrics(MethodView):
    @auth.require("reports", "admin")
    @blp.arguments(PeriodArgs(), location="query")
    @blp.response(200, PointsMetricsSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Points issued, redeemed, expired in the period, and outstanding (the liability), also
        per calendar month"""
        return _read(lambda s: lots.points_metrics(s, args["start"], args["end"]))
