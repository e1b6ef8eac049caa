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
