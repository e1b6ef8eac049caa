"""Earning rules (multipliers and bonuses) and the versions each change leaves behind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import BigIntPK, JSONType, UTCDateTime, utcnow

EARNING_RULE_KINDS = ("multiplier", "bonus_points")


class EarningRule(Base):
    __tablename__ = "earning_rules"
    __table_args__ = (
        CheckConstraint("kind IN ('multiplier', 'bonus_points')", name="kind_known"),
        CheckConstraint(
            "max_points_per_purchase IS NULL OR max_points_per_purchase > 0",
            name="cap_positive",
        ),
        CheckConstraint("budget IS NULL OR budget > 0", name="budget_positive"),
        CheckConstraint(
            "budget IS NULL OR (budget_used >= 0 AND budget_used <= budget)",
            name="budget_used_within_budget",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    #: multiplier: times the base, the exact decimal as sent ("2", "1.5"); bonus_points: points.
    #: Text, so it is exact on every database.
    value: Mapped[str] = mapped_column(String(24))
    #: {store_ids, skus, categories, weekdays, starts_at, ends_at, min_spend, tiers, segments}
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType)
    max_points_per_purchase: Mapped[int | None] = mapped_column(BigInteger)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    stackable: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    budget: Mapped[int | None] = mapped_column(BigInteger)
    budget_used: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def budget_left(self) -> int | None:
        return None if self.budget is None else self.budget - self.budget_used


class EarningRuleVersion(Base):
    """A rule as it was from `created_at` on: every create, change and delete adds one."""

    __tablename__ = "earning_rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "version"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("earning_rules.id"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
