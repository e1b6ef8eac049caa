"""Staff accounts (loyalty/domain/staff.py): passwords, sign-in, roles, the CLI command; the
demo's staff account and history; the dashboard's figures (loyalty/domain/backoffice.py)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from loyalty.domain import backoffice, feedback, metrics, segments, staff
from loyalty.errors import Conflict, ValidationFailed
from loyalty.models import Feedback, Member, Purchase, Return, StaffAccount, Voucher, VoucherHoldout
from loyalty.models.types import utcnow

PASSWORD = "correct horse battery"


def test_a_password_is_stored_as_scrypt_and_checked_in_constant_time() -> None:
    stored = staff.hash_password(PASSWORD)
    method, salt, digest = stored.split("$")
    assert method == "scrypt:32768:8:1" and len(salt) == 16 and len(digest) == 128
    assert PASSWORD not in stored
    assert staff.check_password(stored, PASSWORD)
    assert not staff.check_password(stored, PASSWORD + "!")
    assert staff.hash_password(PASSWORD) != stored  # a new salt each time
    assert not staff.check_password("md5$x$y", PASSWORD)
    assert not staff.check_password("garbage", PASSWORD)


def test_werkzeug_reads_our_hashes() -> None:
    """The format is werkzeug's own: an account could be moved to its check unchanged."""
    from werkzeug.security import check_password_hash

    assert check_password_hash(staff.hash_password(PASSWORD), PASSWORD)


def test_create_and_authenticate(session) -> None:
    account = staff.create_staff(session, " Sam@Example.COM ", PASSWORD, "staff")
    assert (account.email, account.name, account.role) == ("sam@example.com", "sam", "staff")
    assert staff.authenticate(session, "SAM@example.com", PASSWORD) is account
    assert account.last_sign_in_at is not None
    assert staff.authenticate(session, "sam@example.com", "wrong password!") is None
    assert staff.authenticate(session, "nobody@example.com", PASSWORD) is None
    assert staff.authenticate(session, "", "") is None


def test_a_disabled_account_cannot_sign_in(session) -> None:
    account = staff.create_staff(session, "sam@example.com", PASSWORD, "admin")
    account.disabled_at = account.created_at
    assert staff.authenticate(session, "sam@example.com", PASSWORD) is None
    assert staff.get_signed_in(session, account.id, staff.session_token(account)) is None


def test_a_session_ends_when_the_password_changes(session) -> None:
    account = staff.create_staff(session, "sam@example.com", PASSWORD, "admin")
    token = staff.session_token(account)
    assert staff.get_signed_in(session, account.id, token) is account
    staff.set_password(session, account, "another long password")
    assert staff.get_signed_in(session, account.id, token) is None
    assert staff.get_signed_in(session, str(account.id), token) is None


@pytest.mark.parametrize(
    ("email", "password", "role", "field"),
    [
        ("not-an-email", PASSWORD, "staff", "email"),
        ("", PASSWORD, "staff", "email"),
        ("sam@example.com", "short", "staff", "password"),
        ("sam@example.com", "x" * 1025, "staff", "password"),
        ("sam@example.com", PASSWORD, "owner", "role"),
    ],
)
def test_bad_accounts_are_refused(session, email, password, role, field) -> None:
    with pytest.raises(ValidationFailed) as refused:
        staff.create_staff(session, email, password, role)
    assert field in refused.value.errors


def test_one_account_per_email(session) -> None:
    staff.create_staff(session, "sam@example.com", PASSWORD, "staff")
    with pytest.raises(Conflict):
        staff.create_staff(session, "SAM@example.com", PASSWORD, "admin")


def test_roles_map_to_what_the_api_scopes_allow() -> None:
    assert staff.may("reports", "dashboard") and not staff.may("reports", "members")
    assert not staff.may("reports", "feedback") and not staff.may("reports", "settings")
    assert staff.may("staff", "members") and staff.may("staff", "feedback")
    assert not staff.may("staff", "settings")
    assert all(staff.may("admin", p) for p in ("dashboard", "members", "feedback", "settings"))
    assert not staff.may("nobody", "dashboard")


def test_the_audit_log_names_the_staff_member(session) -> None:
    account = staff.create_staff(session, "sam@example.com", PASSWORD, "staff", name="Sam Jones")
    actor = staff.actor_for(account)
    assert actor.name == "Sam Jones" and actor.client_id is None


def test_create_staff_command(app, runner) -> None:
    out = runner.invoke(
        args=[
            "loyalty",
            "create-staff",
            "ann@example.com",
            "--role",
            "reports",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 0, out.output
    assert "ann@example.com (reports)" in out.output and PASSWORD not in out.output
    prompted = runner.invoke(
        args=["loyalty", "create-staff", "bo@example.com", "--role", "admin", "--name", "Bo"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert prompted.exit_code == 0, prompted.output
    again = runner.invoke(
        args=["loyalty", "create-staff", "ann@example.com", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert again.exit_code == 1 and "exists" in again.output
    short = runner.invoke(
        args=["loyalty", "create-staff", "cy@example.com", "--role", "admin", "--password-stdin"],
        input="short\n",
    )
    assert short.exit_code == 1 and "12 characters" in short.output
    bad_role = runner.invoke(args=["loyalty", "create-staff", "cy@example.com", "--role", "boss"])
    assert bad_role.exit_code == 2
    with app.app_context():
        from loyalty.extensions import db

        rows = db.session.execute(
            select(StaffAccount.email, StaffAccount.role, StaffAccount.name).order_by(
                StaffAccount.email
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("ann@example.com", "reports", "ann"),
        ("bo@example.com", "admin", "Bo"),
    ]


def test_seed_demo_prints_a_staff_account_that_signs_in(app, runner) -> None:
    out = runner.invoke(args=["loyalty", "seed-demo", "--url", "http://127.0.0.1:8080"])
    assert out.exit_code == 0, out.output
    assert "Staff back office: http://127.0.0.1:8080/staff/" in out.output
    found = re.search(r"sign in as (\S+) \(admin\), password: (\S+)", out.output)
    assert found, out.output
    assert out.output.splitlines()[-1].startswith("demo-admin key: ")  # still the last line
    with app.app_context():
        from loyalty.extensions import db

        account = staff.authenticate(db.session, found.group(1), found.group(2))
        assert account is not None and (account.role, account.name) == ("admin", "Sam")
        db.session.rollback()


def test_seed_demo_history_spreads_two_years_of_trade(app, runner) -> None:
    out = runner.invoke(args=["loyalty", "seed-demo", "--history"])
    assert out.exit_code == 0, out.output
    assert "History: 40 customers," in out.output
    with app.app_context():
        from loyalty.extensions import db

        s = db.session
        first, last, bought = s.execute(
            select(func.min(Purchase.occurred_at), func.max(Purchase.occurred_at), func.count())
        ).one()
        now = utcnow()
        assert (
            bought > 300 and first < now - timedelta(days=600) and last > now - timedelta(days=31)
        )
        assert s.scalar(select(func.count()).select_from(Return)) > 0
        assert s.scalar(select(func.count()).where(Feedback.comment.is_not(None))) > 20
        assert s.scalar(select(func.min(Feedback.created_at))) < now - timedelta(days=300)
        assert s.scalar(select(func.count()).select_from(VoucherHoldout)) > 0
        # goodwill vouchers are dated when the unhappy answer came in, not at seeding
        sorry = s.execute(
            select(Voucher.created_at, Voucher.valid_from, Voucher.valid_until).where(
                Voucher.kind == "goodwill"
            )
        ).all()
        assert sorry and min(v.created_at for v in sorry) < now - timedelta(days=300)
        assert all(v.valid_until - v.valid_from == timedelta(days=30) for v in sorry)
        board = backoffice.dashboard(s, now.date())
        assert all(m["retention_rate"] is not None for m in board["retention_monthly"])
        assert len(board["cohorts"]) > 0 and sum(board["segments"].values()) == 40
        assert all(f["responses"] > 0 for f in board["feedback"])
        (come_back,) = [k for k in board["vouchers"] if k["kind"] == "come_back"]
        assert come_back["holdout"]["uplift"] is not None
        assert s.scalar(select(func.count()).select_from(Member)) == 43
        s.rollback()


def test_the_dashboard_takes_every_figure_from_the_metrics_functions(app, runner) -> None:
    """One path per metric: the dashboard's series are what the metrics endpoints answer."""
    assert runner.invoke(args=["loyalty", "seed-demo", "--history"]).exit_code == 0
    with app.app_context():
        from loyalty.extensions import db

        s = db.session
        today = utcnow().date()
        board = backoffice.dashboard(s, today, span_months=3)
        for row in board["retention_monthly"] + board["retention_quarterly"]:
            figures = metrics.retention(s, row["start"], row["end"])
            assert row["retention_rate"] == figures["retention_rate"]
            assert row["churn_rate"] == figures["churn_rate"]
        assert board["cohorts"] == metrics.cohorts(s, board["start"], board["end"])["cohorts"]
        for (first, last), row in zip(backoffice.months(today, 3), board["feedback"], strict=True):
            assert row["nps"] == feedback.metrics(s, first, last)["nps"]
        assert board["segments"] == segments.segment_counts(s, today)["segments"]
        assert board["vouchers"] == metrics.vouchers(s, board["start"], board["end"])["kinds"]
        s.rollback()


def test_months_and_quarters_are_whole_and_before_today() -> None:
    from datetime import date

    assert backoffice.months(date(2026, 1, 15), 2) == [
        (date(2025, 11, 1), date(2025, 11, 30)),
        (date(2025, 12, 1), date(2025, 12, 31)),
    ]
    assert backoffice.quarters(date(2026, 5, 2), 2) == [
        (date(2025, 10, 1), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 3, 31)),
    ]


def test_a_new_password_and_disabling_from_the_command_line(app, runner) -> None:
    create = ["loyalty", "create-staff", "sam@example.com", "--role", "staff", "--password-stdin"]
    assert runner.invoke(args=create, input=PASSWORD + "\n").exit_code == 0
    new = "a brand new password"
    out = runner.invoke(
        args=["loyalty", "set-staff-password", "SAM@example.com", "--password-stdin"],
        input=new + "\n",
    )
    assert out.exit_code == 0 and "sessions have ended" in out.output
    missing = runner.invoke(
        args=["loyalty", "set-staff-password", "nobody@example.com", "--password-stdin"],
        input=new + "\n",
    )
    assert missing.exit_code == 1
    with app.app_context():
        from loyalty.extensions import db

        assert staff.authenticate(db.session, "sam@example.com", PASSWORD) is None
        assert staff.authenticate(db.session, "sam@example.com", new) is not None
        db.session.rollback()
    assert runner.invoke(args=["loyalty", "disable-staff", "sam@example.com"]).exit_code == 0
    with app.app_context():
        from loyalty.extensions import db

        assert staff.authenticate(db.session, "sam@example.com", new) is None
        db.session.rollback()
    out = runner.invoke(args=["loyalty", "disable-staff", "sam@example.com", "--enable"])
    assert out.exit_code == 0 and "enabled" in out.output
    with app.app_context():
        from loyalty.extensions import db

        assert staff.authenticate(db.session, "sam@example.com", new) is not None
        db.session.rollback()
