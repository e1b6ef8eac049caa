"""Idempotency-Key records: the first response to a (client, key) is the answer (≥ TTL).

One design, for every idempotent request (`api/uow.py`'s `respond_once`, `/purchases/batch`):

1. look the key up first (`lookup`): a stored response is replayed and nothing runs again;
   the same key with another request raises IdempotencyKeyReused;
2. on a miss, run the request; store its 2xx response (`store`) in the transaction of its
   effect, so the effect and its record commit together or not at all;
3. the unique index on (client, key) is the race guard: a concurrent twin that also missed
   waits on it in `store` until the first commits, then finds the key taken; it rolls its own
   effect back and replays the first response.

A stored response can carry personal data (an enrolment's name, e-mail and phone; a note, a
reason, a comment). So that erasing the member can find it, a record is stored with the member
whose rows its transaction wrote (ORM flushes of a Member or of a row with `member_id`, noted by
`_note_members`) when that is exactly one member; `erasure.redact_traces` rewrites those.
Records are pruned after the TTL (`prune`, the hourly `prune_idempotency` job).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, event, select
from sqlalchemy.orm import Session, SessionTransaction

from loyalty.domain.sql import Fast, upsert
from loyalty.errors import IdempotencyKeyInFlight, IdempotencyKeyReused, ValidationFailed
from loyalty.models import IdempotencyRecord, Member
from loyalty.models.types import utcnow

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Stored:
    status_code: int
    body: str


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 of the request; a JSON body is canonicalised (key order, white space)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON we take: the body parser refuses it (400)
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
            field="Idempotency-Key",
        )
    return key


_STORED = Fast(
    select(
        IdempotencyRecord.request_hash,
        IdempotencyRecord.status_code,
        IdempotencyRecord.response_body,
    ).where(
        IdempotencyRecord.api_client_id == bindparam("client_id"),
        IdempotencyRecord.key == bindparam("key"),
    )
)


def _existing(session: Session, client_id: int, key: str, request_hash: str) -> Stored | None:
    row = _STORED.first(session.connection(), {"client_id": client_id, "key": key})
    if row is None:
        return None
    stored_hash, status_code, body = row
    if stored_hash != request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was first used with a different request.",
            field="Idempotency-Key",
        )
    if status_code is None or body is None:
        raise IdempotencyKeyInFlight(field="Idempotency-Key")
    return Stored(status_code, body)


_RECORD: dict[str, Fast] = {}


def _record_statement(session: Session) -> Fast:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id, built once per dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _RECORD.get(dialect)
    if stmt is None:
        table = IdempotencyRecord.__table__
        stmt = (
            upsert(session, table)
            .values(
                {
                    c: bindparam(c)
                    for c in (
                        "api_client_id",
                        "key",
                        "request_hash",
                        "status_code",
                        "response_body",
                        "created_at",
                        "member_id",
                    )
                }
            )
            .on_conflict_do_nothing(index_elements=["api_client_id", "key"])
            .returning(table.c.id)
        )
        stmt = _RECORD[dialect] = Fast(stmt)
    return stmt


def store(
    session: Session, client_id: int, key: str, request_hash: str, status_code: int, body: str
) -> Stored | None:
    """Store the response for (client, key) in the transaction of its effect; one statement.

    None when stored. When the key is taken (a concurrent twin: this INSERT waited on the unique
    index until the twin committed) it returns the twin's response: the caller rolls its own
    effect back and replays that, so the effect happens exactly once.
    Raises IdempotencyKeyReused (the twin was another request).
    """
    stmt = _record_statement(session)
    session.flush()  # what the transaction wrote is noted (_note_members)
    created = stmt.first(
        session.connection(),
        {
            "api_client_id": client_id,
            "key": key,
            "request_hash": request_hash,
            "status_code": status_code,
            "response_body": body,
            "created_at": utcnow(),
            "member_id": _member_written(session),
        },
    )
    if created is not None:
        return None
    stored = lookup(session, client_id, key, request_hash)
    assert stored is not None, "the key was taken"
    return stored


_MEMBERS = "loyalty.idempotency.members"


@event.listens_for(Session, "after_flush")
def _note_members(session: Session, _flush_context: Any) -> None:
    """Note the members whose rows this flush wrote (in the session, until the transaction ends)."""
    noted: set[int] = session.info.setdefault(_MEMBERS, set())
    for obj in (*session.new, *session.dirty):
        member_id = obj.id if isinstance(obj, Member) else getattr(obj, "member_id", None)
        if isinstance(member_id, int):
            noted.add(member_id)


@event.listens_for(Session, "after_transaction_end")
def _forget_members(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_MEMBERS, None)


def _member_written(session: Session) -> int | None:
    """The one member whose rows this transaction wrote, if exactly one."""
    noted = session.info.get(_MEMBERS) or ()
    return next(iter(noted)) if len(noted) == 1 else None


def lookup(session: Session, client_id: int, key: str, request_hash: str) -> Stored | None:
    """The stored response for (client, key), if any. Raises IdempotencyKeyReused."""
    return _existing(session, client_id, key, request_hash)


#: a key is answered for at least this long, whatever the configured TTL
MIN_TTL_HOURS = 24


def kept_hours(ttl_hours: int) -> int:
    """How long records are kept for a configured TTL: never under MIN_TTL_HOURS."""
    return max(ttl_hours, MIN_TTL_HOURS)


def prune(session: Session, ttl_hours: int) -> int:
    """Delete records older than kept_hours(`ttl_hours`); returns how many."""
    cutoff = utcnow() - timedelta(hours=kept_hours(ttl_hours))
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
