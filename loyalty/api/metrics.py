"""/metrics: retention (the other figures of metrics.md come with the metrics issue)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from loyalty import auth
from loyalty.api.base import LoyaltyBlueprint
from loyalty.domain import metrics
from loyalty.extensions import db
from loyalty.schemas.metrics import CohortsSchema, PeriodArgs, RetentionArgs, RetentionSchema

blp = LoyaltyBlueprint("metrics", __name__, description="Retention metrics (docs/metrics.md)")


@blp.route("/metrics/retention")
class Retention(MethodView):
    @auth.require("reports", "admin")
    @blp.arguments(RetentionArgs(), location="query")
    @blp.response(200, RetentionSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Customers at start, active, new, retained, lost, reactivated, and the rates"""
        return metrics.retention(
            db.session(), args["start"], args["end"], store_id=args.get("store_id")
        )


@blp.route("/metrics/cohorts")
class Cohorts(MethodView):
    @auth.require("reports", "admin")
    @blp.arguments(PeriodArgs(), location="query")
    @blp.response(200, CohortsSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Monthly cohorts (month of first purchase) and their retention month by month"""
        return metrics.cohorts(db.session(), args["start"], args["end"])
