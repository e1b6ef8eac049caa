"""The dashboard (every role) and the feedback inbox (staff, admin)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, render_template
from flask_babel import gettext as _

from loyalty import readdb
from loyalty.domain import backoffice
from loyalty.extensions import db
from loyalty.models.types import utcnow
from loyalty.web.staff import charts
from loyalty.web.staff.blueprint import bp, record_read, requires

#: how far back the inbox looks
INBOX_DAYS = 90


def _charts(data: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's SVG charts, from the figures `backoffice.dashboard` gathered."""
    monthly, quarterly = data["retention_monthly"], data["retention_quarterly"]
    fb = data["feedback"]

    def rates(rows: list[dict[str, Any]]) -> list[charts.Series]:
        return [
            charts.Series(_("Retention"), [r["retention_rate"] for r in rows], charts.PALETTE[0]),
            charts.Series(_("Churn"), [r["churn_rate"] for r in rows], charts.PALETTE[1]),
        ]

    labels = [r["label"] for r in fb]
    return {
        "retention_monthly": charts.line_chart(
            _("Retention and churn per month"), [r["label"] for r in monthly], rates(monthly)
        ),
        "retention_quarterly": charts.bar_chart(
            _("Retention and churn per quarter"), [r["label"] for r in quarterly], rates(quarterly)
        ),
        "cohorts": charts.heatmap(_("Monthly cohorts: share buying again"), data["cohorts"]),
        "nps": charts.line_chart(
            _("NPS per month"),
            labels,
            [charts.Series("NPS", [r["nps"] for r in fb], charts.PALETTE[0])],
            low=-100,
            high=100,
            percent=False,
        ),
        "ces": charts.line_chart(
            _("Customer effort (CES, 1-7, lower is better) per month"),
            labels,
            [charts.Series("CES", [r["ces_average"] for r in fb], charts.PALETTE[3])],
            low=1,
            high=7,
            percent=False,
        ),
        "csat": charts.line_chart(
            _("CSAT per month (share satisfied)"),
            labels,
            [charts.Series("CSAT", [r["csat"] for r in fb], charts.PALETTE[2])],
            low=0,
            high=100,
            percent=False,
        ),
        "segments": charts.horizontal_bars(_("Members per segment"), data["segments"]),
        "uplift": charts.uplift(
            _("Voucher uplift against the holdout"),
            data["vouchers"],
            _("No voucher kind had a holdout in the period."),
        ),
    }


@bp.get("/dashboard")
@requires("dashboard")
def dashboard() -> Any:
    """Retention and churn per month and quarter, cohorts, NPS/CES/CSAT, segments, voucher
    uplift: the metrics of docs/metrics.md over the last whole months."""
    months = current_app.config["LOYALTY_STAFF_DASHBOARD_MONTHS"]
    # the replica, when one is configured, as the API's metrics (the primary if it fails during
    # the read and LOYALTY_READ_FALLBACK=1)
    data, source = readdb.read(
        lambda session: backoffice.dashboard(session, utcnow().date(), span_months=months)
    )
    where = source.stamp({})
    return render_template("staff/dashboard.html", data=data, charts=_charts(data), source=where)


@bp.get("/feedback")
@requires("feedback")
def inbox() -> Any:
    """The latest answers (detractors and high effort first) with their comments, each linked
    to its member and purchase, a goodwill voucher one click away. Names the members: a read
    of personal data, audit-logged."""
    rows = backoffice.feedback_inbox(db.session(), utcnow() - timedelta(days=INBOX_DAYS))
    record_read("feedback", "inbox", {"member_ids": sorted({m.id for _f, m in rows})})
    return render_template(
        "staff/inbox.html", rows=rows, flagged=backoffice.flagged, days=INBOX_DAYS
    )
