"""The programme: one per deployment."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Integer, SmallInteger, String
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
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    currency_exponent: Mapped[int] = mapped_column(SmallInteger)
    points_per_unit: Mapped[int] = mapped_column(Integer)
    rounding: Mapped[str] = mapped_column(String(10))
    points_expire_after_days: Mapped[int | None] = mapped_column(Integer)
    reservation_minutes: Mapped[int] = mapped_column(Integer)
    welcome_policy: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    come_back_policy: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
