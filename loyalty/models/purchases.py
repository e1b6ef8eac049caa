"""Purchases (the repeat-purchase data), their lines, and returns."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from loyalty.models.ledger import LedgerEntry
    from loyalty.models.members import Member
    from loyalty.models.vouchers import Voucher

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, JSONType, UTCDateTime, utcnow


class Purchase(Base):
    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("api_client_id", "external_id"),
        CheckConstraint("amount >= 0", name="amount_non_negative"),
        CheckConstraint("points_earned >= 0", name="points_earned_non_negative"),
        CheckConstraint(
            "returned_amount >= 0 AND returned_amount <= amount", name="returned_within_amount"
        ),
        CheckConstraint(
            "points_reversed >= 0 AND points_reversed <= points_earned",
            name="reversed_within_earned",
        ),
        # No index on occurred_at alone: see migration 0009.
        Index("ix_purchases_member_id_occurred_at", "member_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    api_client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    external_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    store_id: Mapped[str | None] = mapped_column(String(100))
    points_earned: Mapped[int] = mapped_column(BigInteger, default=0)
    returned_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    #: What the points were made of when earned: [{rule_id, rule_version, name, points}]
    breakdown: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def balance(self) -> dict[str, int]:
        return self.member.balance

    @property
    def vouchers_issued(self) -> list[dict[str, Any]]:
        return [v.issued_summary for v in self.issued_vouchers]

    lines: Mapped[list[PurchaseLine]] = relationship(
        order_by="PurchaseLine.line_no", lazy="select", cascade="all, delete-orphan"
    )
    returns: Mapped[list[Return]] = relationship(
        back_populates="purchase", order_by="Return.id", lazy="select"
    )
    member: Mapped[Member] = relationship(lazy="select")
    issued_vouchers: Mapped[list[Voucher]] = relationship(
        primaryjoin="Voucher.source_purchase_id == Purchase.id",
        order_by="Voucher.id",
        viewonly=True,
        lazy="select",
    )
    ledger_entries: Mapped[list[LedgerEntry]] = relationship(
        primaryjoin="LedgerEntry.purchase_id == Purchase.id",
        order_by="LedgerEntry.id",
        viewonly=True,
        lazy="select",
    )


class PurchaseLine(Base):
    __tablename__ = "purchase_lines"
    __table_args__ = (
        UniqueConstraint("purchase_id", "line_no"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    sku: Mapped[str] = mapped_column(String(64))
    category: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    #: The points this line earned (its share of base, tier and rules); returns take back from it
    points: Mapped[int | None] = mapped_column(BigInteger)


class Return(Base):
    __tablename__ = "returns"
    __table_args__ = (
        UniqueConstraint("api_client_id", "external_id"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("points_reversed >= 0", name="points_reversed_non_negative"),
        Index("ix_returns_occurred_at", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"), index=True)
    api_client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    external_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    purchase: Mapped[Purchase] = relationship(back_populates="returns")

    @property
    def balance(self) -> dict[str, int]:
        return self.purchase.member.balance
