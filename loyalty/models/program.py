"""The programme: one per deployment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import JSONType, UTCDateTime, utcnow

ROUNDING_MODES = ("down", "half_up", "up")


class Program(Base):
    __tablename__ = "program"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("points_per_unit >= 0", name="points_per_unit_non_negative"),
        CheckConstraint("reservation_minutes > 0", name="reservation_minutes_positive"),
        CheckConstraint("rounding IN ('down', 'half_up', 'up')", name="rounding_known"),
        CheckConstraint(
            "tier_window IN ('rolling_365', 'calendar_year')", name="tier_window_known"
        ),
        CheckConstraint(
            "tier_downgrade IN ('immediate', 'end_of_period')", name="tier_downgrade_known"
        ),
        CheckConstraint("tier_grace_days >= 0", name="tier_grace_days_non_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    currency_exponent: Mapped[int] = mapped_column(SmallInteger)
    points_per_unit: Mapped[int] = mapped_column(Integer)
    rounding: Mapped[str] = mapped_column(String(10))
    points_expire_after_days: Mapped[int | None] = mapped_column(Integer)
    #: earned points are pending (not spendable) for this many days; null = at once
    pending_days: Mapped[int | None] = mapped_column(Integer)
    reservation_minutes: Mapped[int] = mapped_column(Integer)
    welcome_policy: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    come_back_policy: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    #: the qualifying spend's window: `rolling_365` (the last 365 days) or `calendar_year`
    tier_window: Mapped[str] = mapped_column(
        String(20), default="rolling_365", server_default="rolling_365"
    )
    #: when a tier is lowered: `immediate` (on a return and nightly) or `end_of_period`
    tier_downgrade: Mapped[str] = mapped_column(
        String(20), default="immediate", server_default="immediate"
    )
    #: `end_of_period`: days a tier is kept after its period ended
    tier_grace_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: IANA time zone of the programme's days, weekdays and rule windows (default UTC)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    #: Bumped with every change of an earning rule: the key of each process's cache of rules
    rules_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
