"""Tier changes: every move of a member's tier, up or down, with who and why."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, UTCDateTime, utcnow

#: why a tier changed: a purchase raised it, a return or the recompute (nightly, the CLI, a new
#: tier table) moved it
TIER_CHANGE_REASONS = ("purchase", "return", "recompute", "tier_table")


class TierChange(Base):
    """One change of a member's tier (`from_tier`/`to_tier` null = no tier). Append-only; the
    webhooks of a later version read it."""

    __tablename__ = "tier_changes"
    __table_args__ = (Index("ix_tier_changes_member_id_id", "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"))
    from_tier: Mapped[str | None] = mapped_column(String(50))
    to_tier: Mapped[str | None] = mapped_column(String(50))
    #: the qualifying spend (minor units) the decision was based on
    spend: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
