"""Domain errors and their one mapping to `application/problem+json` (RFC 9457).

Domain code raises a `DomainError` subclass; nothing else decides a status or a code. HTTP-level
failures (unknown route, bad JSON, body too large, schema validation) are mapped here too, so every
error a client sees has the same shape:

    {"type", "title", "status", "detail", "code", "errors": {"field": ["message"]}}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from flask import Response, json
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_MIMETYPE = "application/problem+json"


class DomainError(Exception):
    """A rule refused the request. Subclasses fix `status`, `code` and `title`."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "unprocessable"
    title: ClassVar[str] = "The request was refused"

    def __init__(
        self,
        detail: str | None = None,
        *,
        field: str | None = None,
        errors: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors: dict[str, list[str]] = dict(errors or {})
        if field and field not in self.errors:
            self.errors[field] = [self.detail]


# 400 ------------------------------------------------------------------------------------------
class BadRequest(DomainError):
    status, code, title = 400, "bad_request", "Bad request"


# 404 ------------------------------------------------------------------------------------------
class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


# 409 ------------------------------------------------------------------------------------------
class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict with the current state"


class EmailTaken(Conflict):
    code, title = "email_taken", "A member with this e-mail address exists"


class PhoneTaken(Conflict):
    code, title = "phone_taken", "A member with this phone number exists"


class ExternalRefTaken(Conflict):
    code, title = "external_ref_taken", "A member with this external_ref exists"


class CardInUse(Conflict):
    code, title = "card_in_use", "This card number is already in use"


class CardAlreadyBlocked(Conflict):
    code, title = "card_already_blocked", "This card is already blocked"


class CurrencyLocked(Conflict):
    code, title = "currency_locked", "The currency cannot change once amounts are recorded in it"


class MemberErased(Conflict):
    code, title = "member_erased", "This member's personal data was erased"


class ExternalIdConflict(Conflict):
    code, title = "external_id_conflict", "This external_id is used by another member's record"


class RedemptionNotReserved(Conflict):
    code, title = "redemption_not_reserved", "The redemption is no longer reserved"


class RedemptionAlreadyRedeemed(Conflict):
    code, title = "redemption_already_redeemed", "The redemption was redeemed already"


class FeedbackExists(Conflict):
    code, title = "feedback_exists", "Feedback for this purchase was given already"


class IdempotencyKeyReused(Conflict):
    code, title = "idempotency_key_reused", "Idempotency-Key was used with a different request"


class IdempotencyKeyInFlight(Conflict):
    code, title = "idempotency_key_in_flight", "A request with this Idempotency-Key is in progress"


# 422 ------------------------------------------------------------------------------------------
class ValidationFailed(DomainError):
    status, code, title = 422, "validation_error", "The request is not valid"


class InvalidCardNumber(DomainError):
    code, title = "invalid_card_number", "Not a valid card number (check digit)"


class CardBlocked(DomainError):
    code, title = "card_blocked", "This card is blocked"


class CurrencyMismatch(DomainError):
    code, title = "currency_mismatch", "The currency is not the programme's currency"


class InsufficientPoints(DomainError):
    code, title = "insufficient_points", "Not enough available points"


class ReturnExceedsPurchase(DomainError):
    code, title = "return_exceeds_purchase", "The returns would exceed the purchase amount"


class RewardUnavailable(DomainError):
    code, title = "reward_unavailable", "The reward is not available now"


class OutOfStock(DomainError):
    code, title = "out_of_stock", "The reward is out of stock"


class RewardLimitReached(DomainError):
    code, title = "reward_limit_reached", "The member has redeemed this reward as often as allowed"


class VoucherExpired(DomainError):
    code, title = "voucher_expired", "The voucher has expired"


class VoucherNotYetValid(DomainError):
    code, title = "voucher_not_yet_valid", "The voucher is not valid yet"


class VoucherUsed(DomainError):
    code, title = "voucher_used", "The voucher was used already"


class VoucherVoid(DomainError):
    code, title = "voucher_void", "The voucher was voided"


class BelowMinSpend(DomainError):
    code, title = "below_min_spend", "The amount is below the voucher's minimum spend"


class VoucherWrongMember(DomainError):
    code, title = "voucher_wrong_member", "The voucher belongs to another member"


class FeedbackTokenExpired(DomainError):
    code, title = "feedback_token_expired", "The feedback link has expired"


class MemberMismatch(DomainError):
    code, title = "member_mismatch", "card_number and member_id name different members"


# helpers --------------------------------------------------------------------------------------
def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    errors: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem+json response."""
    body = {
        "type": f"urn:loyalty:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
        "errors": dict(errors or {}),
    }
    resp = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def domain_error_response(exc: DomainError) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="loyalty"'} if exc.status == 401 else None
    return problem(exc.status, exc.code, exc.title, exc.detail, exc.errors, headers)


def flatten_messages(messages: Any) -> dict[str, list[str]]:
    """webargs/marshmallow messages → {"field.path": ["message", ...]}.

    webargs nests them under the location (`{"json": {"email": ["..."]}}`); the location is
    dropped, nested fields are joined with dots, list indexes kept (`purchases.3.amount`).
    """
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list | tuple):
            if all(isinstance(v, str) for v in value):
                out.setdefault(prefix or "_schema", []).extend(value)
            else:
                for sub in value:
                    walk(prefix, sub)
        else:
            out.setdefault(prefix or "_schema", []).append(str(value))

    if isinstance(messages, Mapping):
        for location, sub in messages.items():
            if location in ("json", "query", "querystring", "form", "headers", "path", "files"):
                walk("", sub)
            else:
                walk(str(location), sub)
    else:
        walk("", messages)
    return out


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Missing or unknown API key"),
    403: ("forbidden", "The API key lacks the scope for this operation"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict with the current state"),
    413: ("payload_too_large", "The request body is too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "The request is not valid"),
    429: ("too_many_requests", "Too many requests"),
}


def http_error_response(exc: HTTPException) -> Response:
    """Map a werkzeug/webargs HTTPException to problem+json."""
    status = exc.code or 500
    code, title = _HTTP_CODES.get(status, ("error", exc.name or "Error"))
    detail = exc.description if isinstance(exc.description, str) else None
    errors: dict[str, list[str]] = {}
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, Mapping) else None
    if messages:
        errors = flatten_messages(messages)
        if status == 400 and any("Invalid JSON" in m for ms in errors.values() for m in ms):
            code, title = "invalid_json", "The body is not valid JSON"
            errors = {"_body": ["Invalid JSON body."]}
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
    headers = {}
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="loyalty"'
    return problem(status, code, title, detail if detail else None, errors, headers)


def internal_error_response(exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "Internal server error")
