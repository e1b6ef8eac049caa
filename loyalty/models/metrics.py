"""Metrics rollups: what the metrics read instead of every purchase ever (see docs/metrics.md,
"How the figures are computed"). Derived data, kept by `loyalty.domain.rollups` from the purchases
up to a watermark; a purchase past it is read raw, so the figures never wait for the job."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from loyalty.models.base import Base
from loyalty.models.types import UTCDateTime


class PurchaseDay(Base):
    """A member's purchases of one UTC day at one store: how many and their amount."""

    __tablename__ = "purchase_days"
    __table_args__ = (Index("ix_purchase_days_member_id_day", "member_id", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: 's:' + the purchase's store_id; '' for a purchase without one
    store: Mapped[str] = mapped_column(String(102), primary_key=True)
    purchases: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[int] = mapped_column(BigInteger)


class MemberFirst(Base):
    """The UTC day of a member's first purchase ever (scope '') and at each store (scope 's:' +
    store_id)."""

    __tablename__ = "member_firsts"
    __table_args__ = (Index("ix_member_firsts_scope_first_day", "scope", "first_day"),)

    scope: Mapped[str] = mapped_column(String(102), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_day: Mapped[date] = mapped_column(Date)


class MemberSpan(Base):
    """The UTC days of a member's first and latest purchases, and of the k-th latest for k = 2,
    3, 5, 7, 9, 17, 33, 65 (rollups.SPAN_RANKS; NULL: fewer purchases; two purchases on one day
    make it the latest and the 2nd latest). A member with no purchase after as_of made at least
    k in the window when the k-th latest is in it: what the segments need, without reading the
    member's purchase days."""

    __tablename__ = "member_spans"

    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date, index=True)
    last2_day: Mapped[date | None] = mapped_column(Date)
    last3_day: Mapped[date | None] = mapped_column(Date)
    last5_day: Mapped[date | None] = mapped_column(Date)
    last7_day: Mapped[date | None] = mapped_column(Date)
    last9_day: Mapped[date | None] = mapped_column(Date)
    last17_day: Mapped[date | None] = mapped_column(Date)
    last33_day: Mapped[date | None] = mapped_column(Date)
    last65_day: Mapped[date | None] = mapped_column(Date)
    #: the day of the j-th latest purchase that used a benefit, as benefit_purchases holds them
    #: (rollups.BENEFIT_RANKS)
    benefit1_day: Mapped[date | None] = mapped_column(Date)
    benefit2_day: Mapped[date | None] = mapped_column(Date)
    benefit3_day: Mapped[date | None] = mapped_column(Date)
    benefit4_day: Mapped[date | None] = mapped_column(Date)
    benefit8_day: Mapped[date | None] = mapped_column(Date)
    benefit16_day: Mapped[date | None] = mapped_column(Date)
    benefit32_day: Mapped[date | None] = mapped_column(Date)


class BenefitPurchase(Base):
    """The member and UTC day of a purchase that used a voucher or a reward, noted by the job so
    that the segments need not look the purchase up. A copy of facts that never change; which
    purchases used a benefit is read from the vouchers and redemptions when asked."""

    __tablename__ = "benefit_purchases"
    __table_args__ = (Index("ix_benefit_purchases_member_id_day", "member_id", "day"),)

    purchase_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date)


class PurchaseLink(Base):
    """Purchases counted by (day, previous purchase day) within a scope ('' all stores, 's:' +
    store_id one store), each member's purchases in time order: kind 1 pairs a purchase with the
    member's previous one (NO_DAY for a first purchase), kind 2 with the one before that. Every
    retention count is a sum over the cells of the period's days (loyalty.domain.rollups)."""

    __tablename__ = "purchase_links"
    __table_args__ = (
        # retention reads a period's cells by (scope, day): from this index alone on PostgreSQL
        # (an index-only scan), not from the heap, whose pages the job's updates scatter
        Index(
            "ix_purchase_links_cells",
            "scope",
            "day",
            "kind",
            "prev_day",
            postgresql_include=["purchases", "revenue"],
        ),
    )

    scope: Mapped[str] = mapped_column(String(102), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[int] = mapped_column(Integer, primary_key=True)
    prev_day: Mapped[date] = mapped_column(Date, primary_key=True)
    purchases: Mapped[int] = mapped_column(Integer)
    #: kind 1 only: the amount of the purchases of `day` (all on its first cell of the member)
    revenue: Mapped[int] = mapped_column(BigInteger)


class CohortMonth(Base):
    """How many members of a cohort (month of the first purchase) bought in a month; months are
    numbered year × 12 + month − 1."""

    __tablename__ = "cohort_months"

    cohort: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[int] = mapped_column(Integer, primary_key=True)
    members: Mapped[int] = mapped_column(Integer)


class RollupState(Base):
    """How far the rollups reach: every purchase with id <= watermark is in them, except those
    of the gaps (ids not yet visible when the job passed: in flight, or never to come)."""

    __tablename__ = "rollup_state"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    watermark: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: when member_spans were last made to hold what the rollups hold (= updated_at: current)
    spans_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RollupGap(Base):
    """Purchase ids [lo, hi] at or below the watermark that the rollups do not hold yet, noted
    at `noted_at` (PostgreSQL: the server's clock) when the snapshot's xmax was `horizon`
    (PostgreSQL only): the gap goes once no transaction that could still write it is running."""

    __tablename__ = "rollup_gaps"

    lo: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hi: Mapped[int] = mapped_column(BigInteger)
    noted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    horizon: Mapped[int | None] = mapped_column(BigInteger)
