"""The unit of work around a write request: one transaction, idempotency included.

    auth → transactional → [claim Idempotency-Key] → parse → domain → dump → [store] → COMMIT

Domain functions flush, never commit; this decorator owns the transaction, so the effect and its
idempotency record land together or not at all.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from copy import deepcopy
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.auth import current_client
from loyalty.domain import idempotency, redemptions
from loyalty.domain.vouchers import MIRROR_AFTER_COMMIT
from loyalty.errors import Conflict, DomainError
from loyalty.extensions import db

F = TypeVar("F", bound=Callable[..., Any])

#: Read by the SQLite BEGIN hook: a write transaction takes the write lock up front
#: (BEGIN IMMEDIATE), so read-then-write cannot interleave between app servers.
write_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "write_transaction", default=False
)

IDEMPOTENCY_HEADER_DOC = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "A retry with the same key and body returns the first response again "
    "(header Idempotent-Replayed: true); the same key with another body is refused with 409.",
}

_CONSTRAINT_ERRORS: dict[str, tuple[str, str]] = {
    # constraint name or SQLite "table.column" → (code, field)
    "uq_members_email": ("email_taken", "email"),
    "members.email": ("email_taken", "email"),
    "uq_members_phone": ("phone_taken", "phone"),
    "members.phone": ("phone_taken", "phone"),
    "uq_members_external_ref": ("external_ref_taken", "external_ref"),
    "members.external_ref": ("external_ref_taken", "external_ref"),
    "uq_cards_number": ("card_in_use", "card_number"),
    "cards.number": ("card_in_use", "card_number"),
    "uq_purchases_api_client_id_external_id": ("external_id_conflict", "external_id"),
    "purchases.api_client_id, purchases.external_id": ("external_id_conflict", "external_id"),
    "uq_returns_api_client_id_external_id": ("external_id_conflict", "external_id"),
    "returns.api_client_id, returns.external_id": ("external_id_conflict", "external_id"),
}


def conflict_from_integrity_error(exc: IntegrityError) -> DomainError:
    """A unique violation lost to a concurrent request, as the 409 a pre-check would give."""
    message = str(exc.orig)
    for marker, (code, field) in _CONSTRAINT_ERRORS.items():
        if marker in message:
            error = Conflict("Conflicts with a concurrent change.", field=field)
            error.code = code  # type: ignore[misc]
            return error
    return Conflict("The request conflicts with the current state.")


def replay(stored: idempotency.Stored) -> Response:
    mimetype = "application/json"
    resp = Response(stored.body, status=stored.status_code, mimetype=mimetype)
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


@contextlib.contextmanager
def unit_of_work() -> Iterator[Session]:
    """One write transaction: commit at the end, roll back on any error; a unique violation lost
    to a concurrent request becomes the 409 a pre-check would have given."""
    session = db.session()
    token = write_transaction.set(True)
    if session.in_transaction() and session.get_bind().dialect.name == "sqlite":
        # End the read transaction auth began, so this one starts with BEGIN IMMEDIATE
        # (a deferred read transaction cannot wait for the write lock: SQLITE_BUSY).
        session.rollback()
    try:
        yield session
        session.commit()
        _after_commit(session)
    except IntegrityError as exc:
        session.rollback()
        session.info.pop(MIRROR_AFTER_COMMIT, None)
        raise conflict_from_integrity_error(exc) from None
    except BaseException:
        session.rollback()
        session.info.pop(MIRROR_AFTER_COMMIT, None)
        raise
    finally:
        write_transaction.reset(token)


def apply_due_expiries(member_id: int) -> None:
    """Before a member's balance is shown: expire their overdue reservations, in a write
    transaction of its own, only when there are any (a read in the common case)."""
    if redemptions.has_expired_reservations(db.session(), member_id):
        with unit_of_work() as session:
            redemptions.expire_due(session, member_id)


def _after_commit(session: Session) -> None:
    """Side effects outside the database, once the transaction is safe: the Stripe mirror."""
    ids = session.info.pop(MIRROR_AFTER_COMMIT, None)
    if not ids:
        return
    from loyalty.integrations import stripe as stripe_integration

    config = stripe_integration.StripeConfig.from_mapping(current_app.config)
    if config.enabled:
        try:
            stripe_integration.sync(session, config, ids)
        except Exception:  # never fail a committed request over the mirror
            logging.getLogger(__name__).exception("stripe mirror failed; stripe-sync retries")
            session.rollback()


def transactional(idempotent: bool = False) -> Callable[[F], F]:
    """Run the view in one transaction and commit once; `idempotent` honours Idempotency-Key."""

    def decorator(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = request.headers.get("Idempotency-Key") if idempotent else None
            if key is None:
                with unit_of_work():
                    return current_app.make_response(func(*args, **kwargs))
            idempotency.check_key(key)
            client_id = current_client().id
            fp = idempotency.fingerprint(request.method, request.path, request.get_data())
            try:
                with unit_of_work() as session:
                    resp = current_app.make_response(func(*args, **kwargs))
                    if not 200 <= resp.status_code < 300:
                        return resp
                    body = resp.get_data(as_text=True)
                    if idempotency.record(session, client_id, key, fp, resp.status_code, body):
                        return resp
                    # The key was used before (or by a twin that committed first: the INSERT
                    # waited for it, so this transaction's next statement sees its record):
                    # answer as the first one did, and undo this request's effect.
                    stored = idempotency.lookup(session, client_id, key, fp)
                    session.rollback()
            except DomainError:
                # A retry can fail where the first attempt succeeded (the e-mail is taken now,
                # by that very first attempt): the stored response, if any, is the answer.
                stored = idempotency.lookup(db.session(), client_id, key, fp)
                if stored is None:
                    raise
                return replay(stored)
            assert stored is not None
            return replay(stored)

        if idempotent:
            apidoc = deepcopy(getattr(func, "_apidoc", {}))
            params = apidoc.setdefault("manual_doc", {}).setdefault("parameters", [])
            params.append(IDEMPOTENCY_HEADER_DOC)
            wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator
