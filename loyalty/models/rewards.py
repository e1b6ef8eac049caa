"""The reward catalogue and redemptions."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, JSONType, UTCDateTime, utcnow

if TYPE_CHECKING:
    from loyalty.models.members import Member

REWARD_KINDS = ("amount_off", "percent_off", "free_item")
REDEMPTION_STATUSES = ("reserved", "redeemed", "released", "expired")


class Reward(Base):
    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("kind IN ('amount_off', 'percent_off', 'free_item')", name="kind_known"),
        CheckConstraint("points_cost > 0", name="points_cost_positive"),
        CheckConstraint("stock IS NULL OR stock >= 0", name="stock_non_negative"),
        CheckConstraint(
            "per_member_limit IS NULL OR per_member_limit > 0", name="per_member_limit_positive"
        ),
        CheckConstraint(
            "kind <> 'percent_off' OR (value BETWEEN 1 AND 100)", name="percent_in_range"
        ),
        CheckConstraint("kind <> 'amount_off' OR value > 0", name="amount_positive"),
        CheckConstraint("kind <> 'free_item' OR sku IS NOT NULL", name="free_item_has_sku"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    sku: Mapped[str | None] = mapped_column(String(64))
    points_cost: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    active_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stock: Mapped[int | None] = mapped_column(Integer)
    per_member_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def benefit(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "currency": self.currency, "sku": self.sku}


class Redemption(Base):
    __tablename__ = "redemptions"
    __table_args__ = (
        CheckConstraint(
            "status IN ('reserved', 'redeemed', 'released', 'expired')", name="status_known"
        ),
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_redemptions_member_id_status", "member_id", "status"),
        Index("ix_redemptions_status_expires_at", "status", "expires_at"),
        Index("ix_redemptions_purchase_id", "purchase_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"), index=True)
    status: Mapped[str] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(BigInteger)
    benefit: Mapped[dict[str, Any]] = mapped_column(JSONType)
    order_ref: Mapped[str | None] = mapped_column(String(255))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    api_client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    points_returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    reward: Mapped[Reward] = relationship(lazy="joined")
    member: Mapped[Member] = relationship(lazy="select")

    @property
    def balance(self) -> dict[str, int]:
        return self.member.balance
