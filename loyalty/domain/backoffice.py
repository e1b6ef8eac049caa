"""What the staff back office shows: a member's page, the feedback inbox, the dashboard's
series (no Flask here). Every figure comes from the module that defines it: the metrics from
`metrics`, `feedback.metrics` and `segments` (docs/metrics.md), the balance from the member,
tier progress from `tiers`: this module only chooses the periods and gathers them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session, selectinload

from loyalty.domain import audit, feedback, lots, metrics, purchases, segments, tiers, vouchers
from loyalty.domain.members import get_member
from loyalty.models import AuditEntry, Feedback, Member, Purchase, Redemption

#: rows of each list on a member's page (newest first)
MEMBER_PAGE_ROWS = 50
#: a detractor (NPS) and a high-effort answer (CES) come first in the inbox
DETRACTOR_MAX_NPS = 6
HIGH_EFFORT_MIN_CES = 5


@dataclass(frozen=True)
class MemberPage:
    member: Member
    segment: str | None
    tier_progress: dict[str, Any] | None
    next_expiry: dict[str, Any] | None
    ledger: list[Any]
    ledger_total: int
    purchases: list[Purchase]
    vouchers: list[Any]
    redemptions: list[Redemption]
    feedback: list[Feedback]
    audit: list[dict[str, Any]]


def member_page(session: Session, member_id: int, now: datetime) -> MemberPage:
    """A member with everything the staff page shows. Raises NotFound."""
    member = get_member(session, member_id)
    ledger, ledger_total = purchases.list_entries(
        session, member_id, offset=0, limit=MEMBER_PAGE_ROWS
    )
    bought = session.scalars(
        select(Purchase)
        .where(Purchase.member_id == member_id)
        .options(selectinload(Purchase.returns))
        .order_by(Purchase.occurred_at.desc(), Purchase.id.desc())
        .limit(MEMBER_PAGE_ROWS)
    ).all()
    issued, _ = vouchers.list_for_member(session, member_id, offset=0, limit=MEMBER_PAGE_ROWS)
    redeemed = session.scalars(
        select(Redemption)
        .where(Redemption.member_id == member_id)
        .order_by(Redemption.id.desc())
        .limit(MEMBER_PAGE_ROWS)
    ).all()
    answers = session.scalars(
        select(Feedback)
        .where(Feedback.member_id == member_id)
        .order_by(Feedback.created_at.desc(), Feedback.id.desc())
        .limit(MEMBER_PAGE_ROWS)
    ).all()
    return MemberPage(
        member=member,
        segment=segments.segment_of(session, member_id, now.date()),
        tier_progress=tiers.progress(session, member, now),
        next_expiry=lots.next_expiry(session, member_id),
        ledger=ledger,
        ledger_total=ledger_total,
        purchases=list(bought),
        vouchers=issued,
        redemptions=list(redeemed),
        feedback=list(answers),
        audit=changes_to(session, member_id),
    )


def changes_to(
    session: Session, member_id: int, limit: int = MEMBER_PAGE_ROWS
) -> list[dict[str, Any]]:
    """The audit entries of what was done to the member (reads left out), newest first, as
    the API shows them (`audit.view`)."""
    entries = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.target_type == "member",
            AuditEntry.target_id == str(member_id),
            AuditEntry.action != audit.READ,
        )
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return [audit.view(e) for e in entries]


def flagged(answer: Feedback) -> list[str]:
    """Why an answer needs a look: `detractor` (NPS ≤ 6), `high_effort` (CES ≥ 5)."""
    out = []
    if answer.nps is not None and answer.nps <= DETRACTOR_MAX_NPS:
        out.append("detractor")
    if answer.ces is not None and answer.ces >= HIGH_EFFORT_MIN_CES:
        out.append("high_effort")
    return out


def feedback_inbox(
    session: Session, since: datetime, *, offset: int = 0, limit: int = 50
) -> list[tuple[Feedback, Member]]:
    """The answers given since `since`, each with its member: detractors and high-effort
    answers first, then the rest, each group newest first."""
    needs_look = case(
        (Feedback.nps <= DETRACTOR_MAX_NPS, 0), (Feedback.ces >= HIGH_EFFORT_MIN_CES, 0), else_=1
    )
    rows = session.execute(
        select(Feedback, Member)
        .join(Member, Member.id == Feedback.member_id)
        .where(Feedback.created_at >= since)
        .order_by(needs_look, Feedback.created_at.desc(), Feedback.id.desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return [(f, m) for f, m in rows]


# the dashboard -----------------------------------------------------------------------------
def month_start(day: date, back: int = 0) -> date:
    """The first day of the month `back` months before the month of `day`."""
    index = day.year * 12 + day.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def _month_end(first: date) -> date:
    return month_start(first, -1) - timedelta(days=1)


def months(today: date, count: int) -> list[tuple[date, date]]:
    """The last `count` whole months before the month of `today`, oldest first."""
    return [(month_start(today, k), _month_end(month_start(today, k))) for k in range(count, 0, -1)]


def quarters(today: date, count: int) -> list[tuple[date, date]]:
    """The last `count` whole calendar quarters before the quarter of `today`, oldest first."""
    this_quarter = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
    out = []
    for k in range(count, 0, -1):
        first = month_start(this_quarter, 3 * k)
        out.append((first, month_start(first, -3) - timedelta(days=1)))
    return out


def _label(first: date, quarterly: bool) -> str:
    if quarterly:
        return f"{first.year} Q{(first.month - 1) // 3 + 1}"
    return f"{first:%Y-%m}"


def retention_series(
    session: Session, periods: list[tuple[date, date]], *, quarterly: bool = False
) -> list[dict[str, Any]]:
    """`metrics.retention` of each period: its label, retention and churn rates, counts."""
    out = []
    for first, last in periods:
        figures = metrics.retention(session, first, last)
        out.append(
            {
                "label": _label(first, quarterly),
                "start": first,
                "end": last,
                "retention_rate": figures["retention_rate"],
                "churn_rate": figures["churn_rate"],
                "customers_at_start": figures["customers_at_start"],
                "active_customers": figures["active_customers"],
            }
        )
    return out


def feedback_series(session: Session, periods: list[tuple[date, date]]) -> list[dict[str, Any]]:
    """`feedback.metrics` of each month: NPS, CES average, CSAT and the number of answers."""
    out = []
    for first, last in periods:
        figures = feedback.metrics(session, first, last)
        out.append(
            {
                "label": _label(first, False),
                "nps": figures["nps"],
                "ces_average": figures["ces_average"],
                "csat": figures["csat"],
                "responses": figures["responses"]["total"],
            }
        )
    return out


def dashboard(session: Session, today: date, *, span_months: int = 12) -> dict[str, Any]:
    """Every series of the staff dashboard, over the `span_months` whole months before today's
    (the quarters: twice as long a span, at least 4), computed by the metrics' own functions."""
    recent = months(today, span_months)
    first, last = recent[0][0], recent[-1][1]
    return {
        "today": today,
        "start": first,
        "end": last,
        "retention_monthly": retention_series(session, recent),
        "retention_quarterly": retention_series(
            session, quarters(today, max(4, span_months * 2 // 3)), quarterly=True
        ),
        "cohorts": metrics.cohorts(session, first, last)["cohorts"],
        "feedback": feedback_series(session, recent),
        "segments": segments.segment_counts(session, today)["segments"],
        "vouchers": metrics.vouchers(session, first, last)["kinds"],
    }
