"""Vouchers (return credit) and the holdout records of voucher policies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, UTCDateTime, utcnow

VOUCHER_KINDS = ("come_back", "welcome", "win_back", "goodwill")
DISCOUNT_TYPES = ("amount", "percent")
VOUCHER_STATUSES = ("active", "used", "void")


class Voucher(Base):
    """A single-use code worth an amount or a percentage off a later purchase."""

    __tablename__ = "vouchers"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('come_back', 'welcome', 'win_back', 'goodwill')", name="kind_known"
        ),
        Index("ix_vouchers_stripe_status_valid_until", "stripe_status", "valid_until"),
        CheckConstraint("discount_type IN ('amount', 'percent')", name="discount_type_known"),
        CheckConstraint("status IN ('active', 'used', 'void')", name="status_known"),
        CheckConstraint(
            "(discount_type = 'amount' AND value > 0) OR "
            "(discount_type = 'percent' AND value BETWEEN 1 AND 100)",
            name="value_in_range",
        ),
        CheckConstraint("min_spend >= 0", name="min_spend_non_negative"),
        CheckConstraint("valid_from < valid_until", name="window_ordered"),
        Index("ix_vouchers_member_id_status", "member_id", "status"),
        Index("ix_vouchers_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code: Mapped[str] = mapped_column(String(10), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(10))
    discount_type: Mapped[str] = mapped_column(String(10))
    value: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    min_spend: Mapped[int] = mapped_column(BigInteger, default=0)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10), default="active")
    reason: Mapped[str | None] = mapped_column(String(500))
    campaign: Mapped[str | None] = mapped_column(String(100))
    source_purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_order_ref: Mapped[str | None] = mapped_column(String(255))
    used_purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    discount_given: Mapped[int | None] = mapped_column(BigInteger)
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The Stripe mirror (a coupon and a promotion code): NULL (Stripe off, or not tried yet),
    #: pending (to create, or a failed try: see stripe_error), scheduled (valid from a later
    #: time: created then), synced, deleted (after use, voiding or expiry).
    stripe_status: Mapped[str | None] = mapped_column(String(10))
    stripe_error: Mapped[str | None] = mapped_column(String(500))
    #: When stripe_status was last set or tried (the sweep retries a pending one after a grace).
    stripe_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The id of its Stripe promotion code (`promo_…`, whose customer-facing code is the
    #: voucher's), kept after it is deactivated: a webhook's discount names it.
    stripe_promotion_code_id: Mapped[str | None] = mapped_column(String(255), index=True)

    @property
    def state(self) -> str:
        """`status`, or `expired` for an active one past its validity."""
        if self.status == "active" and utcnow() >= self.valid_until:
            return "expired"
        return self.status

    @property
    def issued_summary(self) -> dict[str, Any]:
        """How a purchase response lists a voucher it issued."""
        return {
            "code": self.display_code,
            "kind": self.kind,
            "discount_type": self.discount_type,
            "value": self.value,
            "currency": self.currency,
            "min_spend": self.min_spend,
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat(),
        }

    @property
    def display_code(self) -> str:
        return f"{self.code[:4]}-{self.code[4:8]}-{self.code[8:]}"


class VoucherHoldout(Base):
    """A member a voucher policy deliberately left without a voucher (the control group)."""

    __tablename__ = "voucher_holdouts"
    __table_args__ = (Index("ix_voucher_holdouts_kind_created_at", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    campaign: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    source_purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    holdout_percent: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StripeEvent(Base):
    """A Stripe webhook event processed once (its id is the key)."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
