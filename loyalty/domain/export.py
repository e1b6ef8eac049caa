"""The right of access: everything held about one member, as plain JSON-ready data.

Each row is given with every column it stores (read from the model, so a column added later is
exported too), times as ISO 8601 strings: the member, their cards, ledger entries, point lots,
tier changes, purchases (each with its lines), returns, vouchers, the campaigns they were held
out of, redemptions, feedback, and the audit entries about them (`target_type = 'member'`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from loyalty.domain.members import get_member
from loyalty.models import (
    AuditEntry,
    Card,
    Feedback,
    LedgerEntry,
    PointLot,
    Purchase,
    PurchaseLine,
    Redemption,
    Return,
    TierChange,
    Voucher,
    VoucherHoldout,
)
from loyalty.models.types import utcnow


def _value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def row_data(row: Any) -> dict[str, Any]:
    """Every stored column of `row`, by attribute name."""
    mapper = inspect(type(row))
    return {attr.key: _value(getattr(row, attr.key)) for attr in mapper.column_attrs}


def _rows(session: Session, model: Any, *where: Any) -> list[dict[str, Any]]:
    query = select(model).where(*where).order_by(model.id)
    return [row_data(row) for row in session.scalars(query)]


def member_export(session: Session, member_id: int) -> dict[str, Any]:
    """Everything held about member `member_id`. Raises NotFound."""
    member = get_member(session, member_id)
    purchases = _rows(session, Purchase, Purchase.member_id == member.id)
    purchase_ids = select(Purchase.id).where(Purchase.member_id == member.id)
    lines: dict[int, list[dict[str, Any]]] = {}
    for line in _rows(session, PurchaseLine, PurchaseLine.purchase_id.in_(purchase_ids)):
        lines.setdefault(line["purchase_id"], []).append(line)
    for purchase in purchases:
        purchase["lines"] = lines.get(purchase["id"], [])
    return {
        "exported_at": utcnow().isoformat(),
        "member": row_data(member),
        "cards": _rows(session, Card, Card.member_id == member.id),
        "ledger": _rows(session, LedgerEntry, LedgerEntry.member_id == member.id),
        "point_lots": _rows(session, PointLot, PointLot.member_id == member.id),
        "tier_changes": _rows(session, TierChange, TierChange.member_id == member.id),
        "purchases": purchases,
        "returns": _rows(session, Return, Return.purchase_id.in_(purchase_ids)),
        "vouchers": _rows(session, Voucher, Voucher.member_id == member.id),
        "voucher_holdouts": _rows(session, VoucherHoldout, VoucherHoldout.member_id == member.id),
        "redemptions": _rows(session, Redemption, Redemption.member_id == member.id),
        "feedback": _rows(session, Feedback, Feedback.member_id == member.id),
        "audit_entries": _rows(
            session,
            AuditEntry,
            AuditEntry.target_type == "member",
            AuditEntry.target_id == str(member.id),
        ),
    }
