"""/feedback: scores from a till or webshop, and the customer's own link from the receipt."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor
from loyalty.api.base import LoyaltyBlueprint
from loyalty.api.uow import transactional
from loyalty.domain import feedback
from loyalty.extensions import db
from loyalty.schemas.feedback import (
    FeedbackCreateSchema,
    FeedbackSchema,
    PublicFeedbackSchema,
    ScoresSchema,
)

blp = LoyaltyBlueprint("feedback", __name__, description="Feedback: NPS, CES, CSAT")


@blp.route("/feedback")
class FeedbackCollection(MethodView):
    @auth.require("pos", "webshop", "admin")
    @transactional(idempotent=True)
    @blp.arguments(FeedbackCreateSchema())
    @blp.response(201, FeedbackSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Record a member's scores (one feedback per purchase)"""
        return feedback.give_feedback(db.session(), data, actor=actor())


@blp.route("/feedback/<string(maxlength=200):token>")
class FeedbackByToken(MethodView):
    @transactional()
    @blp.arguments(ScoresSchema())
    @blp.response(201, PublicFeedbackSchema)
    @blp.doc(security=[])
    def post(self, data: dict[str, Any], token: str) -> Any:
        """The customer's feedback through the link on the receipt (no API key; once; 14 days)"""
        secret = current_app.config["SECRET_KEY"]
        return feedback.give_feedback_by_token(db.session(), token, data, secret=secret)
