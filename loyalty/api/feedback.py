"""/feedback: scores from a till or webshop, the customer's own link from the receipt, and that
link as a QR code to print."""

from __future__ import annotations

import io
from typing import Any

import segno
from flask import Response, current_app
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


#: The QR code's size: each module this many SVG units, a quiet zone of 4 modules around it.
QR_SCALE = 4
QR_RESPONSE = {
    "description": "The purchase's `feedback_url` as a QR code, for the receipt",
    "content": {"image/svg+xml": {"schema": {"type": "string", "format": "binary"}}},
}


@blp.route("/purchases/<id:purchase_id>/feedback-qr")
class FeedbackQr(MethodView):
    @auth.require("pos", "webshop", "admin")
    @blp.doc(responses={"200": QR_RESPONSE})
    def get(self, purchase_id: int) -> Any:
        """The purchase's feedback link as a QR code (SVG) to print on the receipt"""
        config = current_app.config
        url = feedback.link_of_purchase(
            db.session(), purchase_id, config["SECRET_KEY"], config["LOYALTY_PUBLIC_URL"]
        )
        return Response(qr_svg(url), mimetype="image/svg+xml")


def qr_svg(url: str) -> bytes:
    """`url` as a QR code in SVG (error correction M: a crumpled receipt still scans)."""
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(
        out, kind="svg", scale=QR_SCALE, border=4, xmldecl=False, title=url
    )
    return out.getvalue()
