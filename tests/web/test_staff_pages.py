"""The staff back office (/staff) through Flask's test client: sign-in, roles, CSRF, the
actions (each through the API's domain function, in the ledger and the audit log), reads of
personal data audit-logged, the inbox, the dashboard, the programme and the rewards."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from loyalty.domain import feedback, purchases, staff
from loyalty.extensions import db
from loyalty.models import AuditEntry, Card, LedgerEntry, Member, Program, Reward, Voucher
from loyalty.models.types import utcnow
from tests import factories

PASSWORD = "a long enough password"


def token(client: FlaskClient) -> str:
    """The session's CSRF token, as every form of the page carries it."""
    html = client.get("/staff/sign-in").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None) -> Any:
    """A form sent from a freshly opened page: its CSRF token and a new one-time nonce."""
    fresh = {"csrf_token": token(client), "form_nonce": secrets.token_urlsafe(12)}
    return client.post(path, data={**fresh, **(data or {})})


@pytest.fixture
def signed_in(app: Flask) -> Callable[..., FlaskClient]:
    """`signed_in("staff")`: a test client signed in with a new account of that role."""

    def make(role: str, name: str | None = None, client: FlaskClient | None = None) -> FlaskClient:
        email = f"{role}-{factories.next_id()}@example.com"
        with app.app_context():
            staff.create_staff(db.session, email, PASSWORD, role, name=name or role.title())
            db.session.commit()
        client = client or app.test_client()
        r = post(client, "/staff/sign-in", {"email": email, "password": PASSWORD})
        assert r.status_code == 303, r.get_data(as_text=True)
        return client

    return make


@pytest.fixture
def member(app: Flask) -> dict[str, Any]:
    """A member with a purchase (100 points) and feedback on it: id, card, purchase id."""
    with app.app_context():
        till = factories.actor(db.session, ("pos",), name="till")
        m = factories.member(db.session, phone="+31612345678")
        receipt, _ = purchases.record_purchase(
            db.session,
            {"external_id": "r-1", "member_id": m.id, "amount": 10000, "currency": "EUR"},
            actor=till,
            limits=factories_limits(),
        )
        feedback.give_feedback(
            db.session,
            {"member_id": m.id, "purchase_id": receipt.id, "nps": 3, "ces": 6, "comment": "Slow"},
            actor=till,
        )
        out = {"id": m.id, "card": m.card_number, "email": m.email, "purchase": receipt.id}
        db.session.commit()
    return out


def factories_limits() -> Any:
    from loyalty.domain.context import Limits

    return Limits()


def audit_of(app: Flask, **where: Any) -> list[AuditEntry]:
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEntry, key) == value)
        entries = list(db.session.scalars(query))
        db.session.expunge_all()
        return entries


def points_of(app: Flask, member_id: int) -> int:
    with app.app_context():
        return db.session.get(Member, member_id).points


# signing in -------------------------------------------------------------------------------------
def test_pages_need_a_signed_in_account(client) -> None:
    for path in ("/staff/members", "/staff/members/1", "/staff/dashboard", "/staff/program"):
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"].startswith("/staff/sign-in"), path
    assert client.get("/staff/").headers["Location"] == "/staff/sign-in"


def test_a_wrong_password_is_refused_without_saying_which_part(app, client, signed_in) -> None:
    signed_in("staff")  # an account exists
    r = post(client, "/staff/sign-in", {"email": "staff-1@example.com", "password": "nope"})
    assert r.status_code == 401 and "do not match" in r.get_data(as_text=True)
    assert client.get("/staff/members").status_code == 302


def test_sign_in_goes_back_where_it_was_asked_for_and_only_there(app, client) -> None:
    with app.app_context():
        staff.create_staff(db.session, "sam@example.com", PASSWORD, "staff")
        db.session.commit()
    r = post(
        client,
        "/staff/sign-in",
        {"email": "sam@example.com", "password": PASSWORD, "next": "/staff/feedback"},
    )
    assert r.headers["Location"] == "/staff/feedback"
    other = app.test_client()
    r = post(
        other,
        "/staff/sign-in",
        {"email": "sam@example.com", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert r.headers["Location"] == "/staff/"


def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(app) -> None:
    with app.app_context():
        staff.create_staff(db.session, "sam@example.com", PASSWORD, "staff")
        db.session.commit()
    client = app.test_client()
    html = client.get("/staff/sign-in", base_url="https://localhost").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    r = client.post(
        "/staff/sign-in",
        data={"csrf_token": csrf, "email": "sam@example.com", "password": PASSWORD},
        base_url="https://localhost",
    )
    cookie = r.headers["Set-Cookie"]
    assert r.status_code == 303
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_sign_out_ends_the_session_and_a_cookie_copied_before_opens_nothing(app, signed_in) -> None:
    client = signed_in("staff")
    assert client.get("/staff/members").status_code == 200
    copied = client.get_cookie("loyalty_session")
    assert copied is not None
    assert post(client, "/staff/sign-out").status_code == 303
    assert client.get("/staff/members").status_code == 302
    replay = app.test_client()
    replay.set_cookie("loyalty_session", copied.value)
    assert replay.get("/staff/members").status_code == 302  # to the sign-in page


def test_a_session_lasts_LOYALTY_STAFF_SESSION_HOURS(make_app, signed_in) -> None:
    brief = make_app(LOYALTY_STAFF_SESSION_HOURS=0)
    client = signed_in("staff", client=brief.test_client())
    assert client.get("/staff/members").status_code == 302


def test_sign_in_is_rate_limited_per_address(make_app) -> None:
    limited = make_app(LOYALTY_RATE_LIMIT_STAFF_SIGN_IN="2/minute").test_client()
    tries = [
        post(limited, "/staff/sign-in", {"email": "x@example.com", "password": "guess"})
        for _ in range(3)
    ]
    assert [r.status_code for r in tries] == [401, 401, 429]
    assert "Too many" in tries[-1].get_data(as_text=True)
    assert limited.get("/staff/sign-in").status_code == 200  # the form itself is not counted


def test_a_form_without_its_csrf_token_is_refused(app, client, signed_in, member) -> None:
    r = client.post("/staff/sign-in", data={"email": "x@example.com", "password": "x"})
    assert r.status_code == 400
    staff_client = signed_in("staff")
    r = staff_client.post(
        f"/staff/members/{member['id']}/adjust", data={"points": 5, "reason": "no token"}
    )
    assert r.status_code == 400 and "expired" in r.get_data(as_text=True)
    r = staff_client.post(
        f"/staff/members/{member['id']}/adjust",
        data={"points": 5, "reason": "forged", "csrf_token": "forged"},
    )
    assert r.status_code == 400
    assert points_of(app, member["id"]) == 100


# roles ------------------------------------------------------------------------------------------
def test_a_reports_account_sees_the_dashboard_and_no_member(app, signed_in, member) -> None:
    client = signed_in("reports")
    assert client.get("/staff/").headers["Location"] == "/staff/dashboard"
    assert client.get("/staff/dashboard").status_code == 200
    for path in (
        "/staff/members",
        f"/staff/members/{member['id']}",
        f"/staff/members/{member['id']}/edit",
        "/staff/feedback",
        "/staff/program",
        "/staff/rewards",
    ):
        assert client.get(path).status_code == 403, path
    r = post(client, f"/staff/members/{member['id']}/adjust", {"points": 5, "reason": "x"})
    assert r.status_code == 403 and points_of(app, member["id"]) == 100
    assert post(client, "/staff/members", {"term": member["card"]}).status_code == 403
    page = client.get("/staff/dashboard").get_data(as_text=True)
    assert "/staff/members" not in page and "/staff/program" not in page


def test_a_staff_account_acts_on_members_but_not_on_the_programme(signed_in, member) -> None:
    client = signed_in("staff")
    assert client.get("/staff/").headers["Location"] == "/staff/members"
    assert client.get(f"/staff/members/{member['id']}").status_code == 200
    assert client.get("/staff/feedback").status_code == 200
    assert client.get("/staff/program").status_code == 403
    assert client.get("/staff/rewards").status_code == 403
    assert post(client, "/staff/program", {"points_per_unit": "5"}).status_code == 403


# finding and reading members (audit-logged reads) -------------------------------------------------
def test_a_card_number_opens_the_members_page_and_the_read_is_audited(
    app, signed_in, member
) -> None:
    client = signed_in("staff", name="Sam")
    spaced = " ".join(re.findall(".{1,4}", member["card"]))  # as printed on the card
    r = post(client, "/staff/members", {"term": spaced, "by": "auto"})
    assert r.status_code == 303 and r.headers["Location"] == f"/staff/members/{member['id']}"
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert member["email"] in page and "Slow" in page and ">100<" in page
    reads = audit_of(app, action="read")
    assert [(a.target_type, a.target_id, a.actor) for a in reads] == [
        ("members", "search", "Sam"),
        ("member", str(member["id"]), "Sam"),
    ]
    assert reads[0].detail == {
        "by": ["card_number"],
        "member_ids": [member["id"]],
        "staff_account_id": reads[0].detail["staff_account_id"],
        "staff_email": reads[0].detail["staff_email"],
    }
    assert member["card"] not in str(reads[0].detail)  # never the terms


@pytest.mark.parametrize(
    ("by", "term"),
    [("auto", "{email}"), ("auto", "+31612345678"), ("q", "member"), ("auto", "Member")],
)
def test_find_by_email_phone_or_name(signed_in, member, by, term) -> None:
    client = signed_in("staff")
    r = post(client, "/staff/members", {"term": term.format(**member), "by": by})
    assert r.status_code == 200
    assert f"/staff/members/{member['id']}" in r.get_data(as_text=True)


def test_a_bad_search_says_why(signed_in) -> None:
    client = signed_in("staff")
    r = post(client, "/staff/members", {"term": "", "by": "auto"})
    assert r.status_code == 422
    r = post(client, "/staff/members", {"term": "12345678", "by": "card_number"})
    assert r.status_code == 422  # not a valid card number (check digit)
    r = post(client, "/staff/members", {"term": "x", "by": "shoe_size"})
    assert r.status_code == 422
    assert client.get("/staff/members/999999").status_code == 404


# actions -----------------------------------------------------------------------------------------
def test_adjust_with_a_reason_posts_to_the_ledger_and_the_audit_log(app, signed_in, member) -> None:
    client = signed_in("staff", name="Sam")
    path = f"/staff/members/{member['id']}/adjust"
    r = post(client, path, {"points": "25", "reason": "stamp card"})
    assert r.status_code == 303
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "the balance is now 125" in page and 'id="balance-points">125<' in page
    with app.app_context():
        entry = db.session.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc())).first()
        assert (entry.kind, entry.points, entry.note, entry.actor) == (
            "adjust",
            25,
            "stamp card",
            "Sam",
        )
    (adjusted,) = audit_of(app, action="points.adjust")
    assert adjusted.actor == "Sam" and adjusted.detail["reason"] == "stamp card"
    assert adjusted.detail["changes"] == {"points": [100, 125]}


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({"points": "25", "reason": " "}, 422),  # the reason is required
        ({"points": "25"}, 422),
        ({"points": "0", "reason": "x"}, 422),
        ({"points": "ten", "reason": "x"}, 422),
        ({"points": "-500", "reason": "x"}, 422),  # more than the balance
        ({"points": "1000000", "reason": "x"}, 422),  # LOYALTY_MAX_ADJUSTMENT_POINTS
    ],
)
def test_a_refused_adjustment_changes_nothing(app, signed_in, member, data, status) -> None:
    client = signed_in("staff")
    r = post(client, f"/staff/members/{member['id']}/adjust", data)
    assert r.status_code == status, r.get_data(as_text=True)
    assert 'role="alert"' in r.get_data(as_text=True)
    assert points_of(app, member["id"]) == 100
    assert audit_of(app, action="points.adjust") == []


def test_a_goodwill_voucher(app, signed_in, member) -> None:
    client = signed_in("staff", name="Sam")
    path = f"/staff/members/{member['id']}/goodwill"
    data = {"kind": "amount", "value": "500", "valid_days": "30", "reason": "late delivery"}
    r = post(client, path, data)
    assert r.status_code == 303
    with app.app_context():
        voucher = db.session.scalars(select(Voucher)).one()
        assert (voucher.kind, voucher.value, voucher.reason) == ("goodwill", 500, "late delivery")
    (issued,) = audit_of(app, action="voucher.goodwill")
    assert issued.actor == "Sam" and issued.detail["reason"] == "late delivery"
    too_much = post(client, path, {**data, "value": "999999"})
    assert too_much.status_code == 422 and "LOYALTY_MAX_GOODWILL_AMOUNT" in too_much.get_data(
        as_text=True
    )
    assert post(client, path, {**data, "kind": "percent", "value": "150"}).status_code == 422


def test_block_a_card_and_issue_a_new_one(app, signed_in, member) -> None:
    client = signed_in("staff", name="Sam")
    path = f"/staff/members/{member['id']}/cards/{member['card']}/replace"
    assert post(client, path, {"reason": "lost"}).status_code == 303
    with app.app_context():
        cards = db.session.scalars(
            select(Card).where(Card.member_id == member["id"]).order_by(Card.id)
        ).all()
        assert [(c.status, c.block_reason) for c in cards] == [
            ("blocked", "lost"),
            ("active", None),
        ]
    assert [a.action for a in audit_of(app, actor="Sam") if a.action != "read"] == [
        "card.block",
        "card.issue",
    ]
    again = post(client, path, {"reason": "lost"})
    assert again.status_code == 409  # blocked already


def test_a_card_of_another_member_is_not_theirs_to_replace(app, signed_in, member) -> None:
    with app.app_context():
        other = factories.member(db.session)
        other_id = other.id
        db.session.commit()
    client = signed_in("staff")
    r = post(client, f"/staff/members/{other_id}/cards/{member['card']}/replace")
    assert r.status_code == 404
    with app.app_context():
        assert db.session.scalars(
            select(Card.status).where(Card.number == member["card"])
        ).one() == ("active")


def test_edit_personal_data_after_a_confirmation(app, signed_in, member) -> None:
    client = signed_in("staff", name="Sam")
    path = f"/staff/members/{member['id']}/edit"
    assert client.get(path).status_code == 200
    form = {"name": "Ann Smith", "email": "ann.smith@example.com", "phone": "+31612345678"}
    review = post(client, path, form)
    assert review.status_code == 200 and "Confirm" in review.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Member, member["id"]).name != "Ann Smith"  # not yet
    done = post(client, path, {**form, "confirm": "yes"})
    assert done.status_code == 303
    with app.app_context():
        m = db.session.get(Member, member["id"])
        assert (m.name, m.email, m.marketing_consent) == (
            "Ann Smith",
            "ann.smith@example.com",
            False,
        )
    (updated,) = audit_of(app, action="member.update")
    assert updated.actor == "Sam" and updated.detail["changes"]["email"] == [
        member["email"],
        "ann.smith@example.com",
    ]
    bad = post(client, path, {**form, "email": "not an email", "confirm": "yes"})
    assert bad.status_code == 422


def test_erase_after_typing_erase(app, signed_in, member) -> None:
    client = signed_in("staff", name="Sam")
    path = f"/staff/members/{member['id']}/erase"
    assert client.get(path).status_code == 200
    assert post(client, path, {"confirm": "yes"}).status_code == 422
    with app.app_context():
        assert db.session.get(Member, member["id"]).erased_at is None
    assert post(client, path, {"confirm": "ERASE"}).status_code == 303
    with app.app_context():
        m = db.session.get(Member, member["id"])
        assert m.erased_at is not None and m.email is None and m.points == 100
    assert [a.actor for a in audit_of(app, action="member.erase")] == ["Sam"]
    page = client.get(f"/staff/members/{member['id']}")
    assert page.status_code == 200 and "(erased)" in page.get_data(as_text=True)
    assert "/adjust" not in page.get_data(as_text=True)  # nothing more to do for them


# the inbox, the dashboard -----------------------------------------------------------------------
def test_the_inbox_puts_detractors_and_high_effort_first(app, signed_in, member) -> None:
    with app.app_context():
        till = factories.actor(db.session, ("pos",))
        happy = factories.member(db.session)
        feedback.give_feedback(
            db.session,
            {"member_id": happy.id, "nps": 10, "ces": 1, "comment": "Lovely"},
            actor=till,
        )
        db.session.commit()
    client = signed_in("staff")
    page = client.get("/staff/feedback").get_data(as_text=True)
    assert page.index("Slow") < page.index("Lovely")  # the detractor first, though older
    assert f"/staff/members/{member['id']}#purchase-{member['purchase']}" in page
    r = post(
        client,
        f"/staff/members/{member['id']}/goodwill",
        {
            "next": "inbox",
            "kind": "amount",
            "value": "500",
            "valid_days": "30",
            "reason": f"Feedback on purchase {member['purchase']}",
        },
    )
    assert r.status_code == 303 and r.headers["Location"] == "/staff/feedback"
    assert audit_of(app, action="voucher.goodwill")[0].detail["reason"].startswith("Feedback")


def test_the_dashboard_draws_its_charts(app, signed_in, member) -> None:
    with app.app_context():
        till = factories.actor(db.session, ("pos",))
        for months_ago in (2, 3, 5):
            purchases.record_purchase(
                db.session,
                {
                    "external_id": f"old-{months_ago}",
                    "member_id": member["id"],
                    "amount": 2000,
                    "currency": "EUR",
                    "occurred_at": utcnow() - timedelta(days=31 * months_ago),
                },
                actor=till,
                limits=factories_limits(),
            )
        db.session.commit()
    page = signed_in("reports").get("/staff/dashboard").get_data(as_text=True)
    assert page.count("<svg") == 8
    for title in ("Retention and churn per month", "Monthly cohorts", "NPS per month"):
        assert title in page
    assert 'role="img"' in page and "<script" not in page.split("<footer")[0]


# the programme and the catalogue (admins) --------------------------------------------------------
def test_an_admin_changes_the_programme(app, signed_in) -> None:
    client = signed_in("admin", name="Alex")
    page = client.get("/staff/program").get_data(as_text=True)
    assert 'name="points_per_unit"' in page
    form = dict(
        re.findall(r'<input type="(?:text|number)" id="[^"]+" name="([^"]+)" value="([^"]*)"', page)
    )
    form.update(rounding="down", tier_window="rolling_365", tier_downgrade="immediate")
    for name in ("tiers", "welcome_policy", "come_back_policy"):
        found = re.search(rf'name="{name}"[^>]*>([^<]*)</textarea>', page)
        form[name] = found.group(1).replace("&#34;", '"') if found else ""
    form["version"] = re.search(r'name="version" value="([^"]*)"', page).group(1)
    r = post(client, "/staff/program", {**form, "points_per_unit": "3"})
    assert r.status_code == 303, r.get_data(as_text=True)
    page = client.get("/staff/program").get_data(as_text=True)
    form["version"] = re.search(r'name="version" value="([^"]*)"', page).group(1)
    with app.app_context():
        assert db.session.get(Program, 1).points_per_unit == 3
    (changed,) = audit_of(app, action="program.update")
    assert changed.actor == "Alex" and changed.detail["changes"] == {"points_per_unit": [1, 3]}
    bad = post(client, "/staff/program", {**form, "points_per_unit": "-1"})
    assert bad.status_code == 422
    bad_json = post(client, "/staff/program", {**form, "tiers": "[{"})
    assert bad_json.status_code == 422 and "JSON" in bad_json.get_data(as_text=True)


def test_an_admin_edits_the_rewards_catalogue(app, signed_in) -> None:
    client = signed_in("admin", name="Alex")
    r = post(
        client,
        "/staff/rewards",
        {"name": "Free tea", "kind": "free_item", "sku": "TEA", "points_cost": "40"},
    )
    assert r.status_code == 303, r.get_data(as_text=True)
    with app.app_context():
        tea = db.session.scalars(select(Reward)).one()
        tea_id = tea.id
    assert "Free tea" in client.get("/staff/rewards").get_data(as_text=True)
    r = post(
        client,
        f"/staff/rewards/{tea_id}",
        {"name": "Free tea", "points_cost": "45", "stock": "10", "active": "on"},
    )
    assert r.status_code == 303
    with app.app_context():
        assert db.session.get(Reward, tea_id).stock == 10
    r = post(
        client, f"/staff/rewards/{tea_id}", {"name": "Free tea", "points_cost": "45", "stock": ""}
    )
    assert r.status_code == 303
    with app.app_context():
        tea = db.session.get(Reward, tea_id)
        assert (tea.points_cost, tea.active, tea.stock) == (45, False, None)  # box not ticked
    assert [a.action for a in audit_of(app, actor="Alex")] == ["reward.create"] + [
        "reward.update"
    ] * 2
    refused = post(
        client, "/staff/rewards", {"name": "Nothing", "kind": "amount_off", "points_cost": "0"}
    )
    assert refused.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Reward)) == 1


def test_clearing_a_field_and_giving_consent(app, signed_in, member) -> None:
    client = signed_in("staff")
    path = f"/staff/members/{member['id']}/edit"
    form = {"name": "Member", "email": member["email"], "phone": "", "marketing_consent": "on"}
    review = post(client, path, form).get_data(as_text=True)
    assert "phone" in review and "marketing_consent" in review
    assert post(client, path, {**form, "confirm": "yes"}).status_code == 303
    with app.app_context():
        m = db.session.get(Member, member["id"])
        assert (m.name, m.phone, m.marketing_consent) == ("Member", None, True)


def test_the_back_office_speaks_dutch_too(signed_in) -> None:
    client = signed_in("reports")
    page = client.get("/staff/dashboard", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    assert "Behoud en verloop per maand" in page and "Uitloggen" in page
    forbidden = client.get("/staff/members", headers={"Accept-Language": "nl"})
    assert forbidden.status_code == 403 and "Niet voor uw rol" in forbidden.get_data(as_text=True)
