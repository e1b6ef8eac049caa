"""Ledger entries: every change of points, append-only."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, UTCDateTime, utcnow

if TYPE_CHECKING:
    from loyalty.models.members import Member

ENTRY_KINDS = ("earn", "bonus", "reverse", "redeem", "adjust", "expire")


class LedgerEntry(Base):
    """One change of a member's points. Never updated or deleted (a trigger refuses it)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('earn', 'bonus', 'reverse', 'redeem', 'adjust', 'expire')", name="kind_known"
        ),
        CheckConstraint("points <> 0", name="points_non_zero"),
        Index("ix_ledger_entries_member_id_id", "member_id", "id"),
        # Most entries have neither (earnings, adjustments): partial indexes keep them out, so an
        # earning maintains two index entries fewer.
        Index(
            "ix_ledger_entries_return_id",
            "return_id",
            postgresql_where=text("return_id IS NOT NULL"),
            sqlite_where=text("return_id IS NOT NULL"),
        ),
        Index(
            "ix_ledger_entries_redemption_id",
            "redemption_id",
            postgresql_where=text("redemption_id IS NOT NULL"),
            sqlite_where=text("redemption_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(50))
    note: Mapped[str | None] = mapped_column(String(500))
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"), index=True)
    return_id: Mapped[int | None] = mapped_column(ForeignKey("returns.id"))
    redemption_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("redemptions.id"))
    api_client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"))
    actor: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship(lazy="select")

    @property
    def balance(self) -> dict[str, int]:
        return self.member.balance


class PointLot(Base):
    """What is left of one credit: spending, reversals and expiry consume lots, soonest-expiring
    first. Written only by `loyalty.domain.ledger`; the remaining points of a member's lots add up
    to their balance (when it is not in debt), the pending ones to their `pending`."""

    __tablename__ = "point_lots"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_lot"),
        # the lots a debit consumes, in its order; the expiry job's lapsed lots; a purchase's lots
        Index(
            "ix_point_lots_open",
            "member_id",
            "expires_at",
            "id",
            postgresql_where=text("remaining > 0"),
            sqlite_where=text("remaining > 0"),
        ),
        Index(
            "ix_point_lots_lapsing",
            "expires_at",
            postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL"),
            sqlite_where=text("remaining > 0 AND expires_at IS NOT NULL"),
        ),
        Index(
            "ix_point_lots_purchase_id",
            "purchase_id",
            postgresql_where=text("purchase_id IS NOT NULL"),
            sqlite_where=text("purchase_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("members.id"))
    entry_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("ledger_entries.id"))
    purchase_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("purchases.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pending_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    entry: Mapped[LedgerEntry | None] = relationship(lazy="select")
