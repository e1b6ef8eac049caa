"""`flask loyalty worker`, the process `make run` starts beside the server: it runs the jobs the
API enqueues, and stops on Ctrl-C. In both queue modes (SQLite file, Redis)."""

from __future__ import annotations

import json
import signal

from sqlalchemy import select

from loyalty.extensions import db
from loyalty.models import Voucher


def _stripe_status(app) -> str | None:
    with app.app_context():
        return db.session.scalar(select(Voucher.stripe_status))


def test_the_worker_mirrors_a_new_voucher_and_stops_on_ctrl_c(
    app, client, admin, pos, queue, stripe_on, worker, eventually, tmp_path
) -> None:
    proc = worker(
        {
            "STRIPE_API_KEY": app.config["STRIPE_API_KEY"],
            "STRIPE_API_BASE": app.config["STRIPE_API_BASE"],
        }
    )
    m = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    r = client.post(
        f"/api/v1/members/{m['id']}/vouchers",
        json={"kind": "percent", "value": 15, "valid_days": 30, "reason": "late"},
        headers=admin,
    )
    assert (r.status_code, r.json["stripe_status"]) == (201, "pending")

    assert eventually(lambda: _stripe_status(app) == "synced", 30), (
        tmp_path / "worker.log"
    ).read_text()
    assert stripe_on.v1.coupons.retrieve(r.json["code"]).percent_off == 15
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    log = (tmp_path / "worker.log").read_text()
    assert "Huey consumer started" in log and "stripe_mirror" in log
    # the worker logs JSON lines as the app servers do
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(r["logger"] == "huey.consumer" and r["level"] == "INFO" for r in records)


def test_the_worker_is_refused_where_jobs_run_at_once(runner) -> None:
    out = runner.invoke(args=["loyalty", "worker"])  # the tests' app: LOYALTY_JOBS_IMMEDIATE
    assert out.exit_code == 1 and "LOYALTY_JOBS_IMMEDIATE=1" in out.output
