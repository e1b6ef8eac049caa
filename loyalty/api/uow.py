"""The unit of work around a write request: one transaction, idempotency included.

    auth → transactional → [look the Idempotency-Key up: replay?] → parse → domain → dump
         → [store the response for the key] → COMMIT

Domain functions flush, never commit; this module owns the transaction, so the effect and its
idempotency record land together or not at all (domain/idempotency.py has the design).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from copy import deepcopy
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, request
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty import errors, jobs
from loyalty.auth import current_client
from loyalty.domain import idempotency, ledger, redemptions
from loyalty.domain.sql import Fast, constraint_name
from loyalty.errors import DomainError
from loyalty.extensions import db, write_transaction

F = TypeVar("F", bound=Callable[..., Any])

IDEMPOTENCY_HEADER_DOC = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    # printable (str.isprintable) characters a header carries: visible ASCII and Latin-1
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.MAX_KEY_LENGTH,
        "pattern": "^[\u0020-\u007e\u00a1-\u00ac\u00ae-\u00ff]+$",
    },
    "description": "A retry with the same key and body returns the first response again "
    "(header Idempotent-Replayed: true); the same key with another body is refused with 409.",
}


def replay(stored: idempotency.Stored) -> Response:
    resp = Response(stored.body, status=stored.status_code, mimetype="application/json")
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


@contextlib.contextmanager
def unit_of_work(*, flush_later: bool = False) -> Iterator[Session]:
    """One write transaction: commit at the end, roll back on any error; a unique violation lost
    to a concurrent request becomes the error its constraint stands for (errors.for_constraint),
    the 409 a pre-check would have given.

    `flush_later` (PostgreSQL): the COMMIT does not wait for the disk; the caller must call
    `flush_commits` before it answers (a batch: one wait instead of one per item).
    """
    session = db.session()
    token = write_transaction.set(True)
    if session.in_transaction() and session.get_bind().dialect.name == "sqlite":
        # End the read transaction auth began, so this one starts with BEGIN IMMEDIATE
        # (a deferred read transaction cannot wait for the write lock: SQLITE_BUSY).
        session.rollback()
    try:
        if flush_later and session.get_bind().dialect.name == "postgresql":
            _COMMIT_WITHOUT_WAITING.run(session.connection(), {})
        yield session
        session.commit()
        jobs.enqueue_after_commit(session)
    except IntegrityError as exc:
        session.rollback()
        jobs.discard_after_rollback(session)
        raise errors.for_constraint(constraint_name(exc)) from None
    except BaseException:
        session.rollback()
        jobs.discard_after_rollback(session)
        raise
    finally:
        write_transaction.reset(token)


_COMMIT_WITHOUT_WAITING = Fast(text("SET LOCAL synchronous_commit = off"))
_TAKE_XID = text("SELECT pg_current_xact_id()")


def flush_commits() -> None:
    """Return once every transaction committed with `flush_later` is on disk (PostgreSQL).

    A transaction that has an id commits synchronously, and the write-ahead log is flushed in
    order: when its COMMIT returns, every commit before it is durable too.
    """
    session = db.session()
    if session.get_bind().dialect.name == "postgresql":
        with unit_of_work() as tx:
            tx.execute(_TAKE_XID)


def apply_due_expiries(member_id: int) -> None:
    """Before a member's balance is shown: expire their overdue reservations, release their
    pending points whose time is over and expire their lapsed lots, in a write transaction of
    its own, only when there are any (a read in the common case)."""
    if redemptions.has_expired_reservations(db.session(), member_id):
        with unit_of_work() as session:
            redemptions.expire_due(session, member_id)
    read = db.session()
    if ledger.has_due_pending(read, member_id) or ledger.has_lapsed(read, member_id):
        with unit_of_work() as session:
            ledger.settle_due(session, ledger.lock_member(session, member_id))


class _Key:
    """The Idempotency-Key of this request, if it has one, with what identifies the request."""

    def __init__(self) -> None:
        self.key = request.headers.get("Idempotency-Key")
        if self.key is not None:
            idempotency.check_key(self.key)
            self.client_id = current_client().id
            self.hash = idempotency.fingerprint(request.method, request.path, request.get_data())

    def lookup(self, session: Session) -> idempotency.Stored | None:
        assert self.key is not None
        return idempotency.lookup(session, self.client_id, self.key, self.hash)

    def store(self, session: Session, resp: Response) -> idempotency.Stored | None:
        """Store a 2xx response; a twin's stored response when the twin got there first."""
        assert self.key is not None
        body = resp.get_data(as_text=True)
        return idempotency.store(
            session, self.client_id, self.key, self.hash, resp.status_code, body
        )


def respond_once(run: Callable[[], Any], *, atomic: bool = True) -> Response:
    """The response to this request, run at most once per Idempotency-Key (and client).

    `atomic`: the request is one transaction, its record stored in it. Otherwise (a batch:
    each item commits on its own) the response is stored in a transaction of its own after
    `run`. Without a key, `run` just runs (in one transaction when atomic).
    """
    key = _Key()
    if key.key is None:
        if not atomic:
            return current_app.make_response(run())
        with unit_of_work():
            return current_app.make_response(run())
    try:
        if atomic:
            return _atomic_once(key, run)
        stored = key.lookup(db.session())
        if stored is not None:
            return replay(stored)
        resp = current_app.make_response(run())
        if 200 <= resp.status_code < 300:
            with unit_of_work() as session:
                stored = key.store(session, resp)
        return resp if stored is None else replay(stored)
    except DomainError:
        # A twin that committed first can make this run fail (the e-mail is taken now, by that
        # very twin): its stored response, if any, is the answer.
        stored = key.lookup(db.session())
        if stored is None:
            raise
        return replay(stored)


def _atomic_once(key: _Key, run: Callable[[], Any]) -> Response:
    with unit_of_work() as session:
        stored = key.lookup(session)
        if stored is None:
            resp = current_app.make_response(run())
            if not 200 <= resp.status_code < 300:
                session.rollback()  # only 2xx responses are stored, with their effect
                return resp
            stored = key.store(session, resp)
            if stored is None:
                return resp
            session.rollback()  # a twin was first: undo this effect, answer as the twin did
    return replay(stored)


def transactional(idempotent: bool = False) -> Callable[[F], F]:
    """Run the view in one transaction and commit once; `idempotent` honours Idempotency-Key."""

    def decorator(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not idempotent:
                with unit_of_work():
                    return current_app.make_response(func(*args, **kwargs))
            return respond_once(lambda: func(*args, **kwargs))

        if idempotent:
            document_idempotency_key(wrapper, func)
        return wrapper  # type: ignore[return-value]

    return decorator


def document_idempotency_key(wrapper: Any, func: Any) -> None:
    """Add the Idempotency-Key header to the OpenAPI document of `func`'s view."""
    apidoc = deepcopy(getattr(func, "_apidoc", {}))
    params = apidoc.setdefault("manual_doc", {}).setdefault("parameters", [])
    params.append(IDEMPOTENCY_HEADER_DOC)
    wrapper._apidoc = apidoc
