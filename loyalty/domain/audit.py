"""The audit trail: who did what to what, when, why, and what it changed.

Every staff action (an admin key, or the CLI) records one entry with `record`, in the
transaction of the action itself, so the entry and its effect commit together or not at all:
adjustments, goodwill vouchers and voids, cards issued and blocked, member updates, erasures
and exports, programme, earning rule, tier and reward changes, API keys created, rotated and
revoked. Staff reads of personal data (a member search, a member read with contact data by an
admin key, an export) are recorded too, with the action `read` (`record_read`).

An entry's `detail` is a JSON object:

- `changes`: `{field: [before, after]}` for each field the action changed (`diff` builds it;
  a field that did not exist before, or is gone after, has null on that side);
- `reason`: the staff's reason, where the action takes one;
- anything else the action wants kept (a card number, a ledger entry id, the member ids a
  search returned);
- `staff_account_id`, `staff_email`: for an action of a staff member signed in to the back
  office, which account did it (the `actor` column holds their name, which is not unique).

Personal data: a member's personal fields (name, e-mail, phone, external_ref) are recorded as
they were and became, so that staff can see a contact address was changed from what to what.
Erasing the member rewrites the detail of every entry about them (`without_personal`, called
by `erasure`): those values become null and free text `[redacted]`, so the trail does not keep
what the erasure took away. The table is append-only (migration 0017: a trigger refuses DELETE
and any UPDATE but one of `detail` alone, which is what erasure does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from loyalty.domain.context import Actor
from loyalty.models import AuditEntry

#: the action of a staff read of personal data
READ = "read"
#: a member's fields that are personal data (nulled in an erased member's entries)
PERSONAL_FIELDS_ORDER = ("name", "email", "phone", "external_ref")
PERSONAL_FIELDS = frozenset(PERSONAL_FIELDS_ORDER)


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    detail: dict[str, Any] | None = None,
    *,
    changes: Mapping[str, tuple[Any, Any] | list[Any]] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Record that `actor` did `action` to (`target_type`, `target_id`); added to `session` (the
    action's own transaction), flushed with it. Returns the entry.

    - `action`: `<thing>.<verb>` in lower case (`member.update`, `card.block`, `rule.create`,
      `tier.update`, `api_key.rotate`), or `read` for a read of personal data;
    - `target_type`, `target_id`: what it was done to (`member` and the member's id, `program`
      and 1, `api_key` and the client's id); the id is stored as text (≤ 50 characters);
    - `detail`: anything else worth keeping (JSON-serialisable: no datetimes, use isoformat);
    - `changes`: `{field: (before, after)}` of what the action changed (see `diff`); stored
      as `detail["changes"]` with lists for pairs. Values must be JSON-serialisable;
    - `reason`: the reason the staff gave, where the action takes one (`detail["reason"]`).

    The signature is stable: callers in other modules rely on it (new keyword arguments only).
    """
    full = dict(detail or {})
    if changes is not None:
        full["changes"] = {field: [pair[0], pair[1]] for field, pair in changes.items()}
    if reason is not None:
        full["reason"] = reason
    if actor.staff_account_id is not None:
        full["staff_account_id"] = actor.staff_account_id
        full["staff_email"] = actor.staff_email
    entry = AuditEntry(
        api_client_id=actor.client_id,
        actor=actor.name,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=full,
    )
    session.add(entry)
    return entry


def record_read(
    session: Session,
    actor: Actor,
    target_type: str,
    target_id: object,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Record a staff read of personal data (action `read`): a member read with contact data
    (`member`, its id), a search (`members`, `search`, with the ids it returned in `detail`),
    an export (`member`, its id, `{"export": True}`). Never the search terms themselves: they are
    the personal data."""
    return record(session, actor, READ, target_type, target_id, detail)


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], fields: Iterable[str] | None = None
) -> dict[str, tuple[Any, Any]]:
    """`{field: (before, after)}` for each field (of `fields`, default: all in either mapping)
    whose value differs; a field missing on one side is None there. Values are taken as they
    are: pass JSON-serialisable ones (ints, strings, lists; datetimes as isoformat)."""
    names = list(fields) if fields is not None else sorted(set(before) | set(after))
    out: dict[str, tuple[Any, Any]] = {}
    for name in names:
        old, new = before.get(name), after.get(name)
        if old != new:
            out[name] = (old, new)
    return out


def snapshot(obj: object, fields: Iterable[str]) -> dict[str, Any]:
    """The `fields` of a model object as a JSON-serialisable dict (datetimes as isoformat), to
    take before a change and compare with `diff` after it."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def without_personal(detail: dict[str, Any]) -> dict[str, Any]:
    """`detail` with the before and after of personal fields (name, e-mail, phone, external_ref)
    in its `changes` set to null: what erasure leaves of an entry about the erased member (the
    values it changed from are no longer the member's, so matching by value would miss them)."""
    changes = detail.get("changes")
    if not isinstance(changes, dict):
        return detail
    cleared = {
        field: [None, None] if field in PERSONAL_FIELDS else pair for field, pair in changes.items()
    }
    return {**detail, "changes": cleared}


def _filters(
    target_type: str | None,
    target_id: str | None,
    actor: str | None,
    action: str | None,
    from_: date | None,
    to: date | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    for column, value in (
        (AuditEntry.target_type, target_type),
        (AuditEntry.target_id, target_id),
        (AuditEntry.actor, actor),
        (AuditEntry.action, action),
    ):
        if value is not None:
            where.append(column == value)
    if from_ is not None:
        where.append(AuditEntry.at >= datetime.combine(from_, time(), UTC))
    if to is not None:
        where.append(AuditEntry.at < datetime.combine(to + timedelta(days=1), time(), UTC))
    return where


def view(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the API shows it: `reason` and `changes` beside the rest of `detail`."""
    detail = dict(entry.detail or {})
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "api_client_id": entry.api_client_id,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "reason": detail.pop("reason", None),
        "changes": detail.pop("changes", {}),
        "detail": detail,
    }


def list_entries(
    session: Session,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    from_: date | None = None,
    to: date | None = None,
    offset: int,
    limit: int,
) -> tuple[list[dict[str, Any]], int]:
    """The entries matching every filter given (`from_`..`to`: UTC days, both included), newest
    first, one page of them (`view`), and how many match."""
    where = _filters(target_type, target_id, actor, action, from_, to)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    entries = session.scalars(
        select(AuditEntry)
        .where(*where)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [view(e) for e in entries], total
