"""/purchases, /purchases/batch, /purchases/{id}/returns, /checkout/quote."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, request
from flask.views import MethodView

from loyalty import auth
from loyalty.api import actor
from loyalty.api.base import LoyaltyBlueprint
from loyalty.api.uow import replay, transactional, unit_of_work
from loyalty.auth import current_client
from loyalty.domain import feedback, idempotency, purchases
from loyalty.errors import DomainError, flatten_messages
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
    dump_purchase_result,
    load_purchase_fast,
)

blp = LoyaltyBlueprint("purchases", __name__, description="Purchases, returns and quotes")

_purchase_in = PurchaseCreateSchema()


@blp.route("/purchases")
class Purchases(MethodView):
    def dispatch_request(self, **kwargs: Any) -> Any:
        """The common body (no lines, no vouchers) takes the lean path; everything else, and
        every error in the body, the documented one below. Both give the same answer."""
        if request.method == "POST" and request.mimetype == "application/json":
            data = load_purchase_fast(request.get_data(cache=True))
            if data is not None:
                return _post_purchase(data)
        return super().dispatch_request(**kwargs)

    @auth.require("pos", "webshop")
    @transactional(idempotent=True)
    @blp.arguments(PurchaseCreateSchema())
    @blp.response(201, PurchaseResultSchema)
    @blp.alt_response(200, schema=PurchaseResultSchema, description="Already recorded")
    def post(self, data: dict[str, Any]) -> Any:
        """Record a sale and earn its points (a repeated external_id returns the first, 200)"""
        purchase, created = purchases.record_purchase(db.session(), data, actor=actor())
        return purchase, 201 if created else 200


@auth.require("pos", "webshop")
@transactional(idempotent=True)
def _post_purchase(data: dict[str, Any]) -> Any:
    """Purchases.post without the schema layers: the body is checked by load_purchase_fast, the
    answer written by dump_purchase_result, both held to the schemas by the tests."""
    receipt, created = purchases.record_purchase(db.session(), data, actor=actor())
    return dump_purchase_result(receipt, current_app.config["SECRET_KEY"]), 201 if created else 200


@blp.route("/purchases/batch")
class PurchaseBatch(MethodView):
    @auth.require("pos", "webshop")
    @blp.arguments(BatchSchema())
    @blp.response(200, BatchResultSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """An offline till syncs up to 500 purchases: each in its own transaction, in order"""
        key = request.headers.get("Idempotency-Key")
        fp = idempotency.fingerprint(request.method, request.path, request.get_data())
        if key is not None:
            idempotency.check_key(key)
            stored = idempotency.lookup(db.session(), current_client().id, key, fp)
            if stored is not None:
                return replay(stored)
        results = [_batch_item(item) for item in data["purchases"]]
        body = {"results": results}
        if key is not None:
            text = current_app.json.dumps(BatchResultSchema().dump(body))
            with unit_of_work() as session:
                stored_now = idempotency.record(session, current_client().id, key, fp, 200, text)
            if not stored_now:  # a twin batch finished first: its answer is the answer
                stored = idempotency.lookup(db.session(), current_client().id, key, fp)
                assert stored is not None
                return replay(stored)
        return body


def _batch_item(item: dict[str, Any]) -> dict[str, Any]:
    external_id = item.get("external_id") if isinstance(item.get("external_id"), str) else None
    try:
        data = _purchase_in.load(item)
    except ma.ValidationError as exc:
        errors = flatten_messages(exc.messages)
        return _rejected(external_id, 422, "validation_error", "The purchase is not valid", errors)
    try:
        with unit_of_work() as session:
            purchase, created = purchases.record_purchase(session, data, actor=actor())
            result = {
                "external_id": data["external_id"],
                "status": "created" if created else "duplicate",
                "purchase_id": purchase.id,
                "points_earned": purchase.points_earned,
                "feedback_token": feedback.token_for(purchase.id, current_app.config["SECRET_KEY"]),
            }
    except DomainError as exc:
        return _rejected(external_id, exc.status, exc.code, exc.detail, exc.errors)
    return result


def _rejected(
    external_id: str | None, status: int, code: str, detail: str, errors: dict[str, list[str]]
) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "status": "rejected",
        "error": {"status": status, "code": code, "detail": detail, "errors": errors},
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
        """What the basket would earn, and the balance after it; changes nothing"""
        return purchases.quote(db.session(), data)
