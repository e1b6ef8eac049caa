"""/purchases, /purchases/batch, /purchases/{id}/returns, /checkout/quote."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor, limits
from loyalty.api.base import LoyaltyBlueprint
from loyalty.api.problems import domain_problem, flatten_messages, problem_body
from loyalty.api.uow import (
    document_idempotency_key,
    flush_commits,
    respond_once,
    transactional,
    unit_of_work,
)
from loyalty.domain import checkout, clients, feedback, purchases
from loyalty.domain.context import Limits
from loyalty.errors import DomainError
from loyalty.extensions import db
from loyalty.schemas.purchases import (
    BatchResultSchema,
    BatchSchema,
    PurchaseCreateSchema,
    PurchaseDetailSchema,
    PurchaseResultSchema,
    QuoteResultSchema,
    QuoteSchema,
    ReturnCreateSchema,
    ReturnResultSchema,
)

blp = LoyaltyBlueprint("purchases", __name__, description="Purchases, returns and quotes")

_purchase_in = PurchaseCreateSchema()
_batch_out = BatchResultSchema()


@blp.route("/purchases")
class Purchases(MethodView):
    @auth.require("pos", "webshop")
    @transactional(idempotent=True)
    @blp.arguments(PurchaseCreateSchema())
    @blp.response(201, PurchaseResultSchema)
    @blp.alt_response(200, schema=PurchaseResultSchema, description="Already recorded")
    def post(self, data: dict[str, Any]) -> Any:
        """Record a sale and earn its points (a repeated external_id returns the first, 200;
        the same external_id with other fields is refused, 409 external_id_conflict)"""
        receipt, created = purchases.record_purchase(
            db.session(), data, actor=actor(), limits=limits()
        )
        return receipt, 201 if created else 200


@blp.route("/purchases/batch")
class PurchaseBatch(MethodView):
    @auth.require("pos", "webshop")
    @blp.arguments(BatchSchema())
    @blp.response(200, BatchResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """An offline till syncs up to 500 purchases: each in its own transaction, in order"""
        return respond_once(lambda: _batch(data["purchases"]), atomic=False)

    document_idempotency_key(post, post)


def _batch(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Each purchase in its own transaction, in order. Their COMMITs do not wait for the disk
    one by one: one flush before the answer makes them all durable (a crash before it loses
    only purchases no answer was given for; the till sends them again, by external_id)."""
    ceilings = limits()
    results = [_batch_item(item, ceilings) for item in items]
    flush_commits()
    return _batch_out.dump({"results": results})


def _batch_item(item: dict[str, Any], ceilings: Limits) -> dict[str, Any]:
    """One purchase of a batch, in its own transaction; a refusal in the problem shape."""
    external_id = item.get("external_id") if isinstance(item.get("external_id"), str) else None
    try:
        data = _purchase_in.load(item)
    except ma.ValidationError as exc:
        errors = flatten_messages(exc.messages)
        error = problem_body(422, "validation_error", "The request is not valid", None, errors)
        return {"external_id": external_id, "status": "rejected", "error": error}
    try:
        with unit_of_work(flush_later=True) as session:
            receipt, created = purchases.record_purchase(
                session, data, actor=actor(), limits=ceilings
            )
    except DomainError as exc:
        return {"external_id": external_id, "status": "rejected", "error": domain_problem(exc)}
    return {
        "external_id": receipt.external_id,
        "status": "created" if created else "duplicate",
        "purchase_id": receipt.id,
        "points_earned": receipt.points_earned,
        "feedback_token": feedback.token_for(receipt.id, current_app.config["SECRET_KEY"]),
    }


@blp.route("/purchases/<id:purchase_id>")
class PurchaseById(MethodView):
    @auth.require("pos", "webshop", "admin")
    @blp.response(200, PurchaseDetailSchema)
    def get(self, purchase_id: int) -> Any:
        """The purchase, its lines, its returns and its ledger entries"""
        return purchases.get_purchase(db.session(), purchase_id)


@blp.route("/purchases/<id:purchase_id>/returns")
class PurchaseReturns(MethodView):
    @auth.require("pos", "webshop", "admin")
    @transactional(idempotent=True)
    @blp.arguments(ReturnCreateSchema())
    @blp.response(201, ReturnResultSchema)
    @blp.alt_response(200, schema=ReturnResultSchema, description="Already recorded")
    def post(self, data: dict[str, Any], purchase_id: int) -> Any:
        """Refund part or all of a purchase: its share of the points is taken back"""
        ret, created = purchases.record_return(db.session(), purchase_id, data, actor=actor())
        return ret, 201 if created else 200


@blp.route("/checkout/quote")
class CheckoutQuote(MethodView):
    @auth.require("pos", "webshop")
    @blp.arguments(QuoteSchema())
    @blp.response(200, QuoteResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """What the basket would earn, which vouchers and rewards apply; changes nothing"""
        # a key bound to a store quotes for that store, as its purchase would be recorded
        data["store_id"] = clients.check_store(actor(), data.get("store_id"))
        return checkout.quote(db.session(), data)
