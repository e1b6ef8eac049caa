"""The staff back office, as a reviewer tried to break it: who did it in the audit log, a form
sent twice, input the API refuses, reads of personal data, roles on every route, sessions that
end, stale programme forms."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from loyalty.domain import staff
from loyalty.errors import ValidationFailed
from loyalty.extensions import db, write_transaction
from loyalty.models import Card, LedgerEntry, Member, Program, StaffAccount, Voucher
from tests import factories
from tests.web import test_staff_pages as pages
from tests.web.test_staff_pages import PASSWORD, audit_of, points_of, post, token

# the fixtures of the staff pages' tests
signed_in, member = pages.signed_in, pages.member


def account_of(app, email_like: str) -> StaffAccount:
    with app.app_context():
        found = db.session.scalar(
            select(StaffAccount)
            .where(StaffAccount.email.like(email_like))
            .order_by(StaffAccount.id.desc())
        )
        db.session.expunge_all()
        return found


# 1: the audit log names the account ------------------------------------------------------------
def test_the_audit_log_records_the_staff_accounts_id_and_email(app, signed_in, member) -> None:
    client = signed_in("staff", name="Sam")
    twin = signed_in("staff", name="Sam")  # names are not unique
    assert post(client, f"/staff/members/{member['id']}/adjust", {"points": "5", "reason": "a"})
    assert post(twin, f"/staff/members/{member['id']}/adjust", {"points": "7", "reason": "b"})
    first, second = audit_of(app, action="points.adjust")
    assert first.actor == second.actor == "Sam"
    assert first.detail["staff_account_id"] != second.detail["staff_account_id"]
    with app.app_context():
        for entry in (first, second):
            account = db.session.get(StaffAccount, entry.detail["staff_account_id"])
            assert entry.detail["staff_email"] == account.email
    for read in audit_of(app, action="read"):
        assert isinstance(read.detail["staff_account_id"], int)


@pytest.mark.parametrize("name", ["cli", "CLI", "import", "till"])
def test_a_staff_name_may_not_pass_for_another_actor(session, name) -> None:
    factories.actor(session, ("pos",), name="till")
    with pytest.raises(ValidationFailed) as refused:
        staff.create_staff(
            session, f"x-{factories.next_id()}@example.com", PASSWORD, "staff", name=name
        )
    assert "name" in refused.value.errors


# 2: a form sent twice acts once -----------------------------------------------------------------
def test_an_adjustment_sent_twice_is_made_once(app, signed_in, member) -> None:
    client = signed_in("staff")
    path = f"/staff/members/{member['id']}/adjust"
    form = {"points": "25", "reason": "stamp card", "form_nonce": "same-page"}
    assert post(client, path, form).status_code == 303
    again = post(client, path, form)
    assert again.status_code == 409 and "sent already" in again.get_data(as_text=True)
    assert points_of(app, member["id"]) == 125
    assert len(audit_of(app, action="points.adjust")) == 1
    stale = post(client, path, {"points": "25", "reason": "x", "form_nonce": ""})
    assert stale.status_code == 422 and points_of(app, member["id"]) == 125


def test_the_inboxs_goodwill_button_clicked_twice_issues_one_voucher(app, signed_in, member):
    client = signed_in("staff")
    page = client.get("/staff/feedback").get_data(as_text=True)
    nonce = re.search(r'name="form_nonce" value="([^"]+)"', page).group(1)
    form = {"next": "inbox", "kind": "amount", "value": "500", "valid_days": "30"}
    form |= {"reason": "Feedback", "form_nonce": nonce}
    path = f"/staff/members/{member['id']}/goodwill"
    first, second = post(client, path, form), post(client, path, form)
    assert (first.status_code, second.status_code) == (303, 303)
    assert "sent already" in client.get("/staff/feedback").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Voucher)) == 1


def test_a_card_replaced_twice_by_one_form_is_replaced_once(app, signed_in, member) -> None:
    client = signed_in("staff")
    path = f"/staff/members/{member['id']}/cards/{member['card']}/replace"
    form = {"reason": "lost", "form_nonce": "one-form"}
    assert post(client, path, form).status_code == 303
    assert post(client, path, form).status_code == 409
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count()).select_from(Card).where(Card.member_id == member["id"])
            )
            == 2
        )


# 3, 4, 10: input the API refuses is refused here too ------------------------------------------
def test_a_card_reason_longer_than_the_api_takes_is_refused(app, signed_in, member) -> None:
    client = signed_in("staff")
    path = f"/staff/members/{member['id']}/cards/{member['card']}/replace"
    r = post(client, path, {"reason": "x" * 600})
    assert r.status_code == 422 and "500" in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(
            select(Card.status).where(Card.number == member["card"])
        ).one() == ("active")


def program_form(client) -> dict[str, str]:
    page = client.get("/staff/program").get_data(as_text=True)
    form = dict(
        re.findall(
            r'<input type="(?:text|number|hidden)" (?:id="[^"]+" )?name="([^"]+)" value="([^"]*)"',
            page,
        )
    )
    form.update(rounding="down", tier_window="rolling_365", tier_downgrade="immediate")
    for name in ("tiers", "welcome_policy", "come_back_policy"):
        found = re.search(rf'name="{name}"[^>]*>([^<]*)</textarea>', page)
        form[name] = found.group(1).replace("&#34;", '"') if found else ""
    form.pop("csrf_token", None)
    return form


@pytest.mark.parametrize(
    "change",
    [
        {"tiers": "[" * 100_000},  # RecursionError in json.loads
        {"welcome_policy": "NaN"},
        {"points_per_unit": "1_0"},
        {"points_per_unit": "\u0663"},  # an Arabic-Indic 3
        {"points_per_unit": "9" * 5000},
    ],
)
def test_bad_programme_input_is_a_4xx_page(app, signed_in, change) -> None:
    client = signed_in("admin")
    r = post(client, "/staff/program", {**program_form(client), **change})
    assert r.status_code == 422, r.status_code
    with app.app_context():
        assert db.session.get(Program, 1).points_per_unit == 1


@pytest.mark.parametrize("points", ["1_0", "\u0661\u0660", "+ 5", "9" * 5000])
def test_points_are_ascii_digits_with_a_sign(app, signed_in, member, points) -> None:
    client = signed_in("staff")
    r = post(client, f"/staff/members/{member['id']}/adjust", {"points": points, "reason": "x"})
    assert r.status_code == 422 and points_of(app, member["id"]) == 100
    ok = post(client, f"/staff/members/{member['id']}/adjust", {"points": "+5", "reason": "x"})
    assert ok.status_code == 303 and points_of(app, member["id"]) == 105


# 5: the password check holds no write lock ------------------------------------------------------
def test_the_password_is_checked_outside_a_write_transaction(app, client, signed_in, monkeypatch):
    signed_in("staff")  # the account exists
    seen: list[bool] = []
    check = staff.check_password

    def spy(stored: str, password: str) -> bool:
        seen.append(write_transaction.get())
        return check(stored, password)

    monkeypatch.setattr(staff, "check_password", spy)
    email = account_of(app, "staff-%").email
    assert post(client, "/staff/sign-in", {"email": email, "password": PASSWORD}).status_code == 303
    assert (
        post(client, "/staff/sign-in", {"email": "nobody@example.com", "password": "x"}).status_code
        == 401
    )
    assert seen == [False, False]  # the dummy hash is checked too (same cost)
    assert account_of(app, email).last_sign_in_at is not None


# 6: an erased member is refused, not only hidden ----------------------------------------------
def test_no_action_on_an_erased_member(app, signed_in, member) -> None:
    client = signed_in("staff")
    assert (
        post(client, f"/staff/members/{member['id']}/erase", {"confirm": "ERASE"}).status_code
        == 303
    )
    adjust = post(client, f"/staff/members/{member['id']}/adjust", {"points": "5", "reason": "x"})
    goodwill = post(
        client,
        f"/staff/members/{member['id']}/goodwill",
        {"kind": "amount", "value": "500", "valid_days": "30", "reason": "x"},
    )
    assert (adjust.status_code, goodwill.status_code) == (409, 409)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Voucher)) == 0
        assert (
            db.session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "adjust")
            )
            == 0
        )


# 7: every page showing personal data is a logged read --------------------------------------------
def test_the_edit_review_its_error_page_and_the_erase_page_are_logged_reads(
    app, signed_in, member
) -> None:
    with app.app_context():
        other = factories.member(db.session, email="taken@example.com")
        db.session.commit()
        assert other.id
    client = signed_in("staff")
    edit = f"/staff/members/{member['id']}/edit"
    reads = lambda: len(audit_of(app, action="read", target_id=str(member["id"])))  # noqa: E731
    before = reads()
    assert post(client, edit, {"name": "New Name", "email": member["email"]}).status_code == 200
    assert reads() == before + 1  # the review step
    refused = post(client, edit, {"name": "New", "email": "taken@example.com", "confirm": "yes"})
    assert refused.status_code == 409 and reads() == before + 2  # the error page
    assert client.get(f"/staff/members/{member['id']}/erase").status_code == 200
    assert reads() == before + 3


# 8: every role on every route ---------------------------------------------------------------------
#: the permission each staff route needs (None: open to anyone); a new route must be added here
NEEDS = {
    "staff.home": None,
    "staff.sign_in": None,
    "staff.sign_out": None,
    "staff.search": "members",
    "staff.member": "members",
    "staff.adjust": "members",
    "staff.goodwill": "members",
    "staff.replace_card": "members",
    "staff.edit": "members",
    "staff.erase": "members",
    "staff.dashboard": "dashboard",
    "staff.inbox": "feedback",
    "staff.program_settings": "settings",
    "staff.rewards_catalogue": "settings",
    "staff.reward_update": "settings",
}
#: who may: written out here, not read from the code under test
ALLOWED = {
    "dashboard": {"reports", "staff", "admin"},
    "members": {"staff", "admin"},
    "feedback": {"staff", "admin"},
    "settings": {"admin"},
}


def staff_routes(app, member: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) of every staff route, its arguments filled in."""
    args = {"member_id": member["id"], "card_number": member["card"], "reward_id": 999_999}
    out = []
    with app.test_request_context():
        from flask import url_for

        for rule in app.url_map.iter_rules():
            if not rule.endpoint.startswith("staff."):
                continue
            assert rule.endpoint in NEEDS, f"{rule.endpoint}: add it to NEEDS"
            path = url_for(rule.endpoint, **{k: args[k] for k in rule.arguments})
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                out.append((rule.endpoint, method, path))
    return out


def test_every_role_on_every_route_and_method(app, client, signed_in, member) -> None:
    routes = [r for r in staff_routes(app, member) if NEEDS[r[0]] is not None]
    assert len(routes) >= 15
    for role in ("reports", "staff", "admin", None):
        who = signed_in(role) if role else client
        for endpoint, method, path in routes:
            if method == "GET":
                r = who.get(path)
            else:  # a valid CSRF token, no form nonce: nothing is done by an allowed POST
                r = who.post(path, data={"csrf_token": token(who)})
            where = f"{role} {method} {path}"
            if role is None:
                assert r.status_code == 302, where
                assert r.headers["Location"].startswith("/staff/sign-in"), where
            elif role in ALLOWED[NEEDS[endpoint]]:
                assert r.status_code not in (302, 401, 403, 405), where
                assert r.status_code < 500, where
            else:
                assert r.status_code == 403, where
    assert points_of(app, member["id"]) == 100  # no allowed POST did anything
    with app.app_context():
        assert db.session.get(Member, member["id"]).erased_at is None


def test_an_account_disabled_mid_session_is_refused_at_the_next_request(
    app, signed_in, member
) -> None:
    client = signed_in("staff")
    assert client.get(f"/staff/members/{member['id']}").status_code == 200
    with app.app_context():
        account = db.session.scalar(select(StaffAccount).order_by(StaffAccount.id.desc()))
        staff.set_enabled(db.session, account, False)
        db.session.commit()
    assert client.get(f"/staff/members/{member['id']}").status_code == 302
    adjust = post(client, f"/staff/members/{member['id']}/adjust", {"points": "5", "reason": "x"})
    assert adjust.status_code == 302 and points_of(app, member["id"]) == 100


# 9: a form sent after the session ended ---------------------------------------------------------
def test_a_form_sent_after_the_session_ended_leads_back_to_a_page(make_app, signed_in, member):
    brief = make_app(LOYALTY_STAFF_SESSION_HOURS=0)
    client = signed_in("staff", client=brief.test_client())
    r = post(client, f"/staff/members/{member['id']}/adjust", {"points": "5", "reason": "x"})
    assert r.status_code == 302
    target = parse_qs(urlsplit(r.headers["Location"]).query)["next"]
    assert target == [f"/staff/members/{member['id']}"]
    r = post(client, "/staff/program", {"points_per_unit": "5"})
    assert "next=" not in r.headers["Location"]
    r = client.get("/staff/dashboard?months=3")
    assert parse_qs(urlsplit(r.headers["Location"]).query)["next"] == ["/staff/dashboard?months=3"]


# 13: a stale programme form ---------------------------------------------------------------------
def test_a_programme_form_opened_before_another_change_is_refused(app, signed_in) -> None:
    alex, bo = signed_in("admin"), signed_in("admin")
    stale = program_form(bo)
    fresh = program_form(alex)
    assert post(alex, "/staff/program", {**fresh, "points_per_unit": "3"}).status_code == 303
    r = post(bo, "/staff/program", {**stale, "reservation_minutes": "45"})
    assert r.status_code == 409 and "since this form was opened" in r.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Program, 1).points_per_unit == 3
    missing = {k: v for k, v in program_form(bo).items() if k != "version"}
    assert post(bo, "/staff/program", {**missing, "reservation_minutes": "45"}).status_code == 409


# 12: a phone typed without + ---------------------------------------------------------------------
def test_any_search_reads_digits_as_a_phone_when_no_card_has_them(make_app, signed_in, member):
    dutch = make_app(LOYALTY_PHONE_REGION="NL")
    client = signed_in("staff", client=dutch.test_client())
    r = post(client, "/staff/members", {"term": "06 1234 5678", "by": "auto"})
    assert r.status_code == 200 and f"/staff/members/{member['id']}" in r.get_data(as_text=True)
    card = post(client, "/staff/members", {"term": member["card"], "by": "auto"})
    assert card.status_code == 303  # a card number still opens the member's page
    r = post(client, "/staff/members", {"term": "0612345678", "by": "card_number"})
    assert f"/staff/members/{member['id']}" not in r.get_data(as_text=True)  # no guessing


# 11: in the reader's language, said once --------------------------------------------------------
def test_refusals_and_codes_are_in_dutch_and_said_once(app, signed_in, member) -> None:
    client = signed_in("staff")
    nl = {"Accept-Language": "nl"}
    path = f"/staff/members/{member['id']}/adjust"
    data = {"csrf_token": token(client), "form_nonce": "nl-1", "points": "5", "reason": " "}
    page = client.post(path, data=data, headers=nl).get_data(as_text=True)
    assert page.count('role="alert"') == 1
    assert "Een reden moet iets zeggen" in page and "reason:" not in page
    data = {**data, "points": "-500", "reason": "x", "form_nonce": "nl-2"}
    page = client.post(path, data=data, headers=nl).get_data(as_text=True)
    assert "Niet genoeg punten" in page
    page = client.get(f"/staff/members/{member['id']}", headers=nl).get_data(as_text=True)
    assert "<td>actief" in page and "<td>sparen</td>" in page  # card status, ledger kind
    with app.test_request_context(headers=nl):
        from loyalty.web.staff import charts

        cohorts = [{"cohort": "2026-01", "size": 3, "retention": [1.0, 0.5]}]
        assert "maandcohorten" in charts.heatmap("t", cohorts)
        segments = charts.horizontal_bars("t", {"at_risk": 2, "deal_seeker": 1})
        assert "risico" in segments and "koopjesjager" in segments
