"""Campaigns: a bulk issue (win-back) run by a background job in batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, JSONType, UTCDateTime, utcnow

CAMPAIGN_KINDS = ("win_back",)
CAMPAIGN_STATUSES = ("pending", "running", "done", "failed")


class Campaign(Base):
    """One run of a campaign: its parameters, where the job is, and what it has issued so far.

    pending ─job→ running ─last batch→ done; running ─too many failed attempts→ failed. Each batch
    commits its vouchers, its counts and `last_member_id` together, so a job that starts again
    after a crash goes on from there.
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("kind IN ('win_back')", name="kind_known"),
        CheckConstraint("status IN ('pending', 'running', 'done', 'failed')", name="status_known"),
        Index("ix_campaigns_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    issued: Mapped[int] = mapped_column(Integer, default=0)
    holdout: Mapped[int] = mapped_column(Integer, default=0)
    #: The batches' cursor: every member up to this id has been dealt with.
    last_member_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set by every batch: a pending or running campaign not updated for a while lost its job.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def eligible(self) -> int:
        """Members dealt with so far: a voucher or a holdout record each."""
        return self.issued + self.holdout
