"""Feedback after a purchase: NPS, CES, CSAT and a comment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, UTCDateTime, utcnow

FEEDBACK_CHANNELS = ("api", "token")


class Feedback(Base):
    """Up to three scores and a comment; at most one record per purchase."""

    __tablename__ = "feedback"
    __table_args__ = (
        CheckConstraint("nps IS NULL OR nps BETWEEN 0 AND 10", name="nps_range"),
        CheckConstraint("ces IS NULL OR ces BETWEEN 1 AND 7", name="ces_range"),
        CheckConstraint("csat IS NULL OR csat BETWEEN 1 AND 5", name="csat_range"),
        CheckConstraint(
            "nps IS NOT NULL OR ces IS NOT NULL OR csat IS NOT NULL OR comment IS NOT NULL",
            name="not_empty",
        ),
        CheckConstraint("channel IN ('api', 'token')", name="channel_known"),
        Index("ix_feedback_created_at", "created_at"),
        Index("ix_feedback_member_id_created_at", "member_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"), unique=True)
    nps: Mapped[int | None] = mapped_column(Integer)
    ces: Mapped[int | None] = mapped_column(Integer)
    csat: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String(2000))
    channel: Mapped[str] = mapped_column(String(10), default="api")
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
