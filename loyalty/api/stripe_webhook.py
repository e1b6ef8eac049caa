"""POST /stripe/webhook: Stripe's signed events (no API key; the signature is the credential)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, request
from flask.views import MethodView

from loyalty.api import limits
from loyalty.api.base import LoyaltyBlueprint
from loyalty.api.body import strict_loads
from loyalty.api.uow import unit_of_work
from loyalty.errors import NotFound
from loyalty.integrations import stripe as stripe_integration

blp = LoyaltyBlueprint("stripe", __name__, description="Stripe webhooks")


class WebhookResultSchema(ma.Schema):
    received = ma.fields.Boolean(required=True)
    status = ma.fields.String(
        required=True,
        metadata={
            "enum": ["processed", "duplicate", "ignored", "rejected"],
            "description": "processed; duplicate (seen before, nothing changed); ignored "
            "(nothing to do, or an event we cannot use); rejected (a rule refused it)",
        },
    )
    outcome = ma.fields.String(
        required=True, metadata={"description": "what happened, e.g. `purchase 12 created`"}
    )
    reason = ma.fields.String(
        allow_none=True, metadata={"description": "why, when ignored or rejected"}
    )


@blp.route("/stripe/webhook")
class StripeWebhook(MethodView):
    @blp.response(200, WebhookResultSchema)
    @blp.doc(
        security=[],
        parameters=[
            {
                "in": "header",
                "name": "Stripe-Signature",
                "required": True,
                "schema": {"type": "string"},
            }
        ],
    )
    def post(self) -> Any:
        """payment_intent.succeeded and checkout.session.completed → a purchase and the vouchers
        it used; charge.refunded → returns; each event once; a signed event that cannot be used
        is acknowledged as ignored"""
        config = stripe_integration.StripeConfig.from_mapping(current_app.config)
        if not config.webhook_secret:
            raise NotFound("Stripe is not configured here.")
        payload = request.get_data()
        stripe_integration.verify(payload, request.headers.get("Stripe-Signature"), config)
        with unit_of_work() as session:
            outcome = stripe_integration.handle(
                session, payload, limits=limits(), loads=strict_loads
            )
        return {
            "received": True,
            "status": outcome.status,
            "outcome": outcome.text,
            "reason": outcome.detail if outcome.status in ("ignored", "rejected") else None,
        }
