"""Members and their cards."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, UTCDateTime, utcnow

CARD_STATUSES = ("active", "blocked")


class Member(Base):
    """An enrolled customer and their points account (`points` posted, `held` reserved).

    `points` and `held` are written only by `loyalty.domain.ledger`.
    """

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("held >= 0", name="held_non_negative"),
        CheckConstraint("pending >= 0", name="pending_non_negative"),
        CheckConstraint("available_floor <= 0", name="available_floor_non_positive"),
        # A spend can never take `available` below zero; only a return's debt can (see ledger.py).
        CheckConstraint("points - held >= available_floor", name="available_above_floor"),
        Index("ix_members_created_at_id", "created_at", "id"),
        # room on each page for the balance's next row version (HOT updates): migration 0008
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(16), unique=True)
    marketing_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    #: points of pending lots (not yet spendable); written only by `loyalty.domain.ledger`
    pending: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    available_floor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: the amounts of all the member's purchases, returns not taken off (minor units): kept in
    #: the purchase's balance UPDATE and by the import; no qualifying spend can exceed it, so a
    #: purchase below the next tier's threshold skips the spend query (domain/tiers.py)
    gross_spend: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    tier: Mapped[str | None] = mapped_column(String(50))
    #: when the member reached the tier they hold (null without one); written by domain/tiers.py
    tier_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: `end_of_period` downgrades: the tier is kept until then (the period's end + grace days)
    tier_held_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    cards: Mapped[list[Card]] = relationship(back_populates="member", order_by="Card.id")

    #: Set by GET /members/{id}: the member's segment today (domain/segments.py).
    segment: ClassVar[str | None] = None

    @property
    def available(self) -> int:
        return self.points - self.held - self.pending

    @property
    def balance(self) -> dict[str, int]:
        return {
            "points": self.points,
            "held": self.held,
            "pending": self.pending,
            "available": self.available,
        }

    @property
    def card_number(self) -> str | None:
        """The member's first active card, if any."""
        return next((c.number for c in self.cards if c.status == "active"), None)


class Card(Base):
    __tablename__ = "cards"
    __table_args__ = (CheckConstraint("status IN ('active', 'blocked')", name="status_known"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    number: Mapped[str] = mapped_column(String(19), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    block_reason: Mapped[str | None] = mapped_column(String(500))

    member: Mapped[Member] = relationship(back_populates="cards", lazy="joined")

    @property
    def card_number(self) -> str:
        return self.number
