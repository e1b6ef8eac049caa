"""API clients (keys), idempotency records and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, JSONType, UTCDateTime, utcnow

SCOPES = ("pos", "webshop", "admin", "reports")


class ApiClient(Base):
    """A caller with an API key. Only the SHA-256 of the key is stored."""

    __tablename__ = "api_clients"
    __table_args__ = (
        # a revoked client's name may be given to a new one
        Index(
            "uq_api_clients_name_active",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))
    scopes: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the key before the last rotation, accepted until `previous_key_expires_at`
    previous_key_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    previous_key_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: the key stops working then (None: never); a rotation keeps it or sets a new one
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: when a request last used the key, to the minute (written at most once a minute)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: a till key bound to one store: it posts purchases and returns for that store only
    store_id: Mapped[str | None] = mapped_column(String(100))


class IdempotencyRecord(Base):
    """The stored response of a POST sent with an Idempotency-Key, committed with its effect."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("api_client_id", "key"),
        # found when the member is erased; most records (purchases) have none: kept out
        Index(
            "ix_idempotency_records_member_id",
            "member_id",
            postgresql_where=text("member_id IS NOT NULL"),
            sqlite_where=text("member_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    api_client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: the one member whose rows the request wrote (no foreign key: a tag that erasure looks
    #: up, pruned with the record)
    member_id: Mapped[int | None] = mapped_column(BigInteger)


class AuditEntry(Base):
    """Who did what to what, for staff actions (and staff reads of personal data).

    Append-only: a trigger refuses UPDATE and DELETE (migration 0017), but the one UPDATE
    erasure makes, which rewrites `detail` alone. `detail` holds `changes: {field: [before,
    after]}` and, where the action takes one, `reason` (see `loyalty.domain.audit.record`).
    """

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_target", "target_type", "target_id"),
        Index("ix_audit_entries_at", "at"),
        Index("ix_audit_entries_actor_at", "actor", "at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    target_type: Mapped[str] = mapped_column(String(50))
    target_id: Mapped[str] = mapped_column(String(50))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
