"""The audit log of staff actions."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from loyalty.domain.context import Actor
from loyalty.models import AuditEntry


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        api_client_id=actor.client_id,
        actor=actor.name,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        detail=detail or {},
    )
    session.add(entry)
    return entry
