"""What erasing a member redacts beside the member row: the free text kept about them.

`members.erase_member` clears the member's personal columns and blocks their cards; this module
then redacts every place a name, an e-mail address or a phone number can still be read:

- the member's own free text: ledger notes (the ledger stays append-only: its trigger lets
  exactly this one change through, `note` → REDACTED, every other column unchanged), voucher
  reasons, feedback comments, card block reasons, the `reason`-like fields of the audit entries
  about them. All of it, not only what visibly carries a personal value: staff write "Mrs J. from
  the bakery" as easily as a name, and no pattern finds that;
- any other row's free text that carries the member's e-mail address or phone number (exact,
  case-insensitive): a note about one member may name another;
- the stored Idempotency-Key responses (replays) of requests that wrote the member's rows
  (`idempotency_records.member_id`), and any other that carries the e-mail or phone: their
  personal fields are nulled and their free text redacted, so a retried enrolment replays the
  erased member, not the person. They are kept, not dropped: a dropped record would let a retry
  run its effect a second time (a second adjustment, a second enrolment).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from loyalty.domain import audit
from loyalty.models import AuditEntry, Card, Feedback, IdempotencyRecord, LedgerEntry, Voucher

#: what redacted free text reads
REDACTED = "[redacted]"
#: the block reason of the cards erasure blocks
ERASED = "member_erased"
#: keys of a JSON document (audit detail, stored response) whose value is free text
FREE_TEXT_KEYS = frozenset({"note", "comment", "reason", "block_reason"})
#: keys whose value is a personal field of a member
PERSONAL_KEYS = frozenset({"name", "email", "phone", "external_ref"})
#: a stored response's `reason` may be a code (a ledger entry's `staff_adjustment`), not text
_CODE = re.compile(r"[a-z][a-z0-9_]*")


def _like_any(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], needles: Sequence[str]
) -> list[ColumnElement[bool]]:
    """`lower(column) LIKE '%needle%'` for each needle (LIKE's wildcards escaped)."""
    out: list[ColumnElement[bool]] = []
    for needle in needles:
        escaped = needle.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        out.append(func.lower(column).like(f"%{escaped}%", escape="\\"))
    return out


def _redact_column(
    session: Session,
    column: InstrumentedAttribute[str | None],
    member_id: int,
    needles: Sequence[str],
) -> int:
    """Set `column` to REDACTED in the member's rows and in any row carrying a needle."""
    model = column.class_
    which = or_(model.member_id == member_id, *_like_any(column, needles))
    result = session.execute(
        update(model)
        .where(column.is_not(None), column.not_in([REDACTED, ERASED]), which)
        .values({column.key: REDACTED})
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def redact_json(value: Any, personal: Iterable[str], *, codes_kept: bool = False) -> Any:
    """`value` (a parsed JSON document) with the member's traces taken out: a personal key
    (name, email, phone, external_ref) holding one of the `personal` values → None,
    `marketing_consent` → false, free text (note, comment, reason, block_reason) → REDACTED
    (`codes_kept`: a `reason` that is a code such as `staff_adjustment` stays), and any other
    string carrying a personal value (case-insensitive) → REDACTED."""
    lowered = [p.lower() for p in personal if p]

    def walk(item: Any, key: str | None) -> Any:
        if isinstance(item, dict):
            return {k: walk(v, k) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, None) for v in item]
        if key == "marketing_consent" and item is True:
            return False
        if not isinstance(item, str):
            return item
        if key in PERSONAL_KEYS and item.lower() in lowered:
            return None
        if key in FREE_TEXT_KEYS and item != ERASED and not (codes_kept and _CODE.fullmatch(item)):
            return REDACTED
        if any(p in item.lower() for p in lowered):
            return REDACTED
        return item

    return walk(value, None)


def _redact_audit(
    session: Session, member_id: int, personal: Sequence[str], needles: Sequence[str]
) -> int:
    """The audit entries about the member, and any other whose detail carries a needle."""
    about = (AuditEntry.target_type == "member") & (AuditEntry.target_id == str(member_id))
    detail_text = cast(AuditEntry.detail, String)
    entries = session.scalars(
        select(AuditEntry).where(or_(about, *_like_any(detail_text, needles)))
    )
    changed = 0
    for entry in entries:
        mine = entry.target_type == "member" and entry.target_id == str(member_id)
        # the personal values an entry about the member changed from are no longer the
        # member's: cleared by field, not found by value
        detail = audit.without_personal(entry.detail) if mine else entry.detail
        redacted = redact_json(detail, personal)
        if redacted != entry.detail:
            entry.detail = redacted
            changed += 1
    return changed


def _redact_replays(
    session: Session, member_id: int, personal: Sequence[str], needles: Sequence[str]
) -> int:
    """The stored responses of requests that wrote the member's rows, and any other carrying a
    needle: rewritten without the member's traces (same status; the key still replays)."""
    records = session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.response_body.is_not(None),
            or_(
                IdempotencyRecord.member_id == member_id,
                *_like_any(IdempotencyRecord.response_body, needles),
            ),
        )
    )
    changed = 0
    for record in records:
        assert record.response_body is not None
        try:
            body = json.loads(record.response_body)
        except ValueError:  # every stored response is JSON; anything else is left alone
            continue
        redacted = redact_json(body, personal, codes_kept=True)
        if redacted != body:
            record.response_body = json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))
            changed += 1
    return changed


def redact_traces(
    session: Session,
    member_id: int,
    *,
    personal: Sequence[str | None],
    identifiers: Sequence[str | None],
) -> dict[str, int]:
    """Redact what is kept about an erased member beside the member row (module docstring).

    `personal`: the member's name, e-mail, phone and external_ref as they were (None after a
    first erasure: the member's own rows are still found by id). `identifiers`: of those, the
    ones other members' rows are searched for: the e-mail address and the phone number, which
    name one person (a name can be a common word: "Rose"). Idempotent. Returns the number of
    rows changed per place.
    """
    values = [p for p in personal if p]
    needles = [p for p in identifiers if p]
    counts = {
        "ledger_notes": _redact_column(session, LedgerEntry.note, member_id, needles),
        "voucher_reasons": _redact_column(session, Voucher.reason, member_id, needles),
        "feedback_comments": _redact_column(session, Feedback.comment, member_id, needles),
        "card_block_reasons": _redact_column(session, Card.block_reason, member_id, needles),
        "audit_entries": _redact_audit(session, member_id, values, needles),
        "idempotency_records": _redact_replays(session, member_id, values, needles),
    }
    session.flush()
    return counts
