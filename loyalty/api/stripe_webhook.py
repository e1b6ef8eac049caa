"""POST /stripe/webhook: Stripe's signed events (no API key; the signature is the credential)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, request
from flask.views import MethodView

from loyalty.api.base import LoyaltyBlueprint
from loyalty.api.uow import unit_of_work
from loyalty.errors import NotFound
from loyalty.integrations import stripe as stripe_integration

blp = LoyaltyBlueprint("stripe", __name__, description="Stripe webhooks")


class WebhookResultSchema(ma.Schema):
    received = ma.fields.Boolean(required=True)
    outcome = ma.fields.String(required=True)


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
        """payment_intent.succeeded → a purchase; charge.refunded → returns; each event once"""
        config = stripe_integration.StripeConfig.from_mapping(current_app.config)
        if not config.webhook_secret:
            raise NotFound("Stripe is not configured here.")
        event = stripe_integration.verify(
            request.get_data(), request.headers.get("Stripe-Signature"), config
        )
        with unit_of_work() as session:
            outcome = stripe_integration.process(session, event, config)
        return {"received": True, "outcome": outcome}
