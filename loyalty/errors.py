"""The error table: every refusal a client can get, as plain data (no Flask here).

Each `DomainError` subclass fixes `status`, `code` and `title`; domain code raises them and
nothing else decides a status or a code. `loyalty/api/problems.py` turns them (and HTTP-level
failures) into `application/problem+json` (RFC 9457):

    {"type", "title", "status", "detail", "code", "errors": {"field": ["message"]}}

A database constraint maps to its error by constraint name (`CONSTRAINT_ERRORS`), so a unique
violation lost to a concurrent request gives the same 409 as the check that ran first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


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


class InvalidSignature(BadRequest):
    code, title = "invalid_signature", "The Stripe-Signature header does not verify"


class InvalidJSON(BadRequest):
    code, title = "invalid_json", "The body is not valid JSON"


# 401, 403 -------------------------------------------------------------------------------------
class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Missing or unknown API key"


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "The API key lacks the scope for this operation"


class StoreNotAllowed(DomainError):
    status, code, title = 403, "store_not_allowed", "The API key is bound to another store"


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
    code, title = "external_id_conflict", "This external_id was used for a different record"


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


# 415 ------------------------------------------------------------------------------------------
class UnsupportedMediaType(DomainError):
    status, code, title = 415, "unsupported_media_type", "Send the body as application/json"


# 422 ------------------------------------------------------------------------------------------
class ValidationFailed(DomainError):
    status, code, title = 422, "validation_error", "The request is not valid"


class InvalidCardNumber(DomainError):
    code, title = "invalid_card_number", "Not a valid card number (check digit)"


class CardNumberOutOfRange(DomainError):
    code, title = (
        "card_number_out_of_range",
        "This number is not in the programme's card ranges (LOYALTY_CARD_PREFIXES)",
    )


class CardBlocked(DomainError):
    code, title = "card_blocked", "This card is blocked"


class CurrencyMismatch(DomainError):
    code, title = "currency_mismatch", "The currency is not the programme's currency"


class InsufficientPoints(DomainError):
    code, title = "insufficient_points", "Not enough available points"


class ReturnExceedsPurchase(DomainError):
    code, title = "return_exceeds_purchase", "The returns would exceed the purchase"


class ReturnBeforePurchase(DomainError):
    code, title = "return_before_purchase", "A return cannot be dated before its purchase"


class SkuNotInPurchase(DomainError):
    code, title = "sku_not_in_purchase", "The purchase has no line with this sku"


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


class LimitExceeded(DomainError):
    code, title = "limit_exceeded", "Above a configured limit"


# 429 ------------------------------------------------------------------------------------------
class RateLimited(DomainError):
    """Too many requests from one API key or address (raised by `loyalty/ratelimits.py` before
    the view runs); `Retry-After` says when to try again."""

    status, code, title = 429, "rate_limited", "Too many requests: slow down"


# 503 ------------------------------------------------------------------------------------------
class ReplicaUnavailable(DomainError):
    """The metrics read from a replica (LOYALTY_READ_DATABASE_URL) that cannot be reached or
    gave up on the query, and falling back to the primary is not configured
    (LOYALTY_READ_FALLBACK)."""

    status, code, title = 503, "replica_unavailable", "The metrics replica cannot be reached"


class MetricsCatchingUp(DomainError):
    """The segments' per-member rollups are behind the others: a job of the release before
    migration 0021 rolled purchases up after it, during an upgrade. The next run of the job
    (within a minute of the new worker's start) makes them again; until then the segments
    answer this rather than figures that may be off."""

    status, code, title = (
        503,
        "metrics_catching_up",
        "The segment rollups are being made again after an upgrade: try again in a minute",
    )


# constraints -----------------------------------------------------------------------------------
#: Unique constraints a concurrent request can lose on, by name → (error, field at fault).
CONSTRAINT_ERRORS: dict[str, tuple[type[DomainError], str]] = {
    "uq_members_email": (EmailTaken, "email"),
    "uq_members_phone": (PhoneTaken, "phone"),
    "uq_members_external_ref": (ExternalRefTaken, "external_ref"),
    "uq_cards_number": (CardInUse, "card_number"),
    "uq_purchases_api_client_id_external_id": (ExternalIdConflict, "external_id"),
    "uq_returns_api_client_id_external_id": (ExternalIdConflict, "external_id"),
    "uq_feedback_purchase_id": (FeedbackExists, "purchase_id"),
}


def for_constraint(name: str | None) -> DomainError:
    """The error a violated unique constraint stands for (a generic 409 for any other)."""
    error_class, field = CONSTRAINT_ERRORS.get(name or "", (Conflict, ""))
    if error_class is Conflict:
        return Conflict("The request conflicts with the current state.")
    return error_class("Conflicts with a concurrent change.", field=field)
