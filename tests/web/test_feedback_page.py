"""/f/<token>: the customer's feedback page (server side: what each state answers, the same
rules as the API's link, CSRF, the two languages, the rate limit)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from loyalty.extensions import db
from loyalty.models import Feedback, Member, Purchase
from loyalty.models.types import utcnow


@pytest.fixture
def purchase(client, pos) -> dict:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    body = {"external_id": "r1", "member_id": member["id"], "amount": 1000, "currency": "EUR"}
    r = client.post("/api/v1/purchases", json=body, headers=pos)
    assert r.status_code == 201, r.json
    return r.json


def _path(purchase: dict) -> str:
    return f"/f/{purchase['feedback_token']}"


def _token(html: bytes) -> str:
    found = re.search(rb'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1).decode()


def _answer(client, purchase: dict, **fields: str):
    page = client.get(_path(purchase))
    return client.post(_path(purchase), data={"csrf_token": _token(page.data), **fields})


def test_the_purchase_response_carries_the_feedback_url(app, purchase) -> None:
    assert purchase["feedback_url"] == (
        f"{app.config['LOYALTY_PUBLIC_URL']}/f/{purchase['feedback_token']}"
    )


def test_the_page_asks_three_questions_and_a_comment(client, purchase) -> None:
    r = client.get(_path(purchase))
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.data.decode()
    for name, low, high in (("nps", 0, 10), ("ces", 1, 7), ("csat", 1, 5)):
        values = re.findall(rf'name="{name}" value="(\d+)"', html)
        assert values == [str(n) for n in range(low, high + 1)]
    assert 'name="comment"' in html and "<script" not in html  # no JavaScript needed


def test_answers_are_recorded_once_then_the_page_says_thank_you(app, client, purchase) -> None:
    r = _answer(client, purchase, nps="9", ces="2", csat="5", comment=" Friendly ")
    assert r.status_code == 303 and r.headers["Location"].endswith(_path(purchase))
    thanks = client.get(_path(purchase))
    assert thanks.status_code == 200 and b"have been received" in thanks.data
    again = client.get(_path(purchase))  # a later visit: answered, no form
    assert (
        b"answered already" in again.data and b'<form method="post" action="/f/' not in again.data
    )
    with app.app_context():
        rows = db.session.scalars(select(Feedback)).all()
    assert [(f.nps, f.ces, f.csat, f.comment, f.channel) for f in rows] == [
        (9, 2, 5, "Friendly", "token")
    ]
    late = client.post(_path(purchase), data={"csrf_token": _token(again.data), "nps": "1"})
    assert late.status_code == 200 and b"answered already" in late.data


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, b"at least one question"),
        ({"nps": "11"}, b"one of the numbers"),
        ({"ces": "0"}, b"one of the numbers"),
        ({"csat": "x"}, b"one of the numbers"),
        # digits to str.isdigit() that are not a number to int(), or not to the API
        ({"nps": "\u00b2"}, b"one of the numbers"),  # superscript two
        ({"nps": "\u2460"}, b"one of the numbers"),  # circled one
        ({"ces": "\u0661"}, b"one of the numbers"),  # Arabic-Indic one
        ({"csat": "\uff11"}, b"one of the numbers"),  # full-width one
        ({"nps": "-1"}, b"one of the numbers"),
        ({"nps": "1.0"}, b"one of the numbers"),
        ({"nps": "9" * 30}, b"one of the numbers"),
        ({"comment": "x" * 2001}, b"2000 characters"),
        ({"comment": "a\x00b"}, b"cannot be stored"),
    ],
)
def test_answers_the_api_refuses_are_refused_here_too(
    app, client, purchase, fields, message
) -> None:
    r = _answer(client, purchase, **fields)
    assert r.status_code == 422 and message in r.data
    assert b"How was your visit?" in r.data  # the questions again, to correct
    with app.app_context():
        assert db.session.scalar(select(Feedback.id)) is None


def test_a_line_break_in_the_comment_counts_as_one_character(app, client, purchase) -> None:
    """The browser counts a line break as one for maxlength=2000, then sends CR LF."""
    comment = "ab\r\n" * 666  # 1,998 characters in the textarea, 2,664 on the wire
    assert _answer(client, purchase, comment=comment).status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Feedback.comment)) == ("ab\n" * 666).strip()


def test_a_comment_alone_is_enough(client, purchase) -> None:
    assert _answer(client, purchase, comment="Nice shop").status_code == 303


def test_a_post_without_the_csrf_token_is_refused(app, client, purchase) -> None:
    client.get(_path(purchase))
    r = client.post(_path(purchase), data={"nps": "5"})
    assert r.status_code == 400 and b"did not come from this site" in r.data
    forged = client.post(_path(purchase), data={"nps": "5", "csrf_token": "forged"})
    assert forged.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(Feedback.id)) is None


def test_an_expired_link_says_so(app, client, purchase) -> None:
    with app.app_context():
        db.session.execute(
            update(Purchase)
            .where(Purchase.id == purchase["id"])
            .values(created_at=utcnow() - timedelta(days=15))
        )
        db.session.commit()
    r = client.get(_path(purchase))
    assert r.status_code == 410 and b"has expired" in r.data and b"14 days" in r.data


def test_a_link_nobody_made_is_not_found(client, purchase) -> None:
    r = client.get(_path(purchase)[:-2] + "xx")
    assert r.status_code == 404 and b"not valid" in r.data
    assert r.mimetype == "text/html"


def test_an_erased_member_s_link_takes_no_answers(app, client, purchase) -> None:
    with app.app_context():
        db.session.execute(
            update(Member).where(Member.id == purchase["member_id"]).values(erased_at=utcnow())
        )
        db.session.commit()
    r = client.get(_path(purchase))
    assert r.status_code == 410 and b"no longer be used" in r.data


def test_dutch_from_the_browser_and_the_switch_remembers_english(client, purchase) -> None:
    nl = client.get(_path(purchase), headers={"Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"})
    assert b'<html lang="nl">' in nl.data and b"Hoe was uw bezoek?" in nl.data
    switched = client.post(
        "/language", data={"csrf_token": _token(nl.data), "lang": "en", "next": _path(purchase)}
    )
    assert switched.status_code == 303 and switched.headers["Location"] == _path(purchase)
    en = client.get(_path(purchase), headers={"Accept-Language": "nl"})
    assert b'<html lang="en">' in en.data and b"How was your visit?" in en.data


def test_the_switch_goes_back_to_this_site_only(client, purchase) -> None:
    page = client.get(_path(purchase))
    for target in (
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",  # a browser drops the tab: //evil.example
        "/\n/evil.example",
        "/x\nY",  # a line break cannot go into the Location header
        "/x\r\nSet-Cookie: a=b",
        "/x\x7f",
        "https:evil.example",
        "javascript:alert(1)",
        " //evil.example",
        "",
    ):
        r = client.post(
            "/language", data={"csrf_token": _token(page.data), "lang": "nl", "next": target}
        )
        assert r.status_code == 303 and r.headers["Location"] == "/", repr(target)
    for target in (_path(purchase), "/staff/members?q=ann&page=2", "/caf\u00e9"):
        r = client.post(
            "/language", data={"csrf_token": _token(page.data), "lang": "nl", "next": target}
        )
        assert r.status_code == 303 and r.headers["Location"] in (target, "/caf%C3%A9")


def test_the_answers_are_rate_limited_per_address(make_app, purchase) -> None:
    """Answers (POSTs) count against LOYALTY_RATE_LIMIT_FEEDBACK; views of the page do not."""
    limited = make_app(LOYALTY_RATE_LIMIT_FEEDBACK="2/minute").test_client()
    views = [limited.get(_path(purchase)) for _ in range(5)]
    assert [r.status_code for r in views] == [200] * 5
    token = _token(views[-1].data)
    answers = [
        limited.post(_path(purchase), data={"csrf_token": token, "nps": "x"}) for _ in range(3)
    ]
    assert [r.status_code for r in answers] == [422, 422, 429]
    r = answers[-1]
    assert r.mimetype == "text/html" and b"Too many requests" in r.data
    assert int(r.headers["Retry-After"]) >= 1
    assert limited.get(_path(purchase)).status_code == 200  # the page still reads


def test_customers_behind_one_address_can_all_answer(client, pos, make_app) -> None:
    """The default (10 a minute per address): a shop's Wi-Fi is one address, and each answer
    is a view, a post and the thank-you."""
    shop_wifi = make_app(LOYALTY_RATE_LIMIT_FEEDBACK="10/minute").test_client()
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    for n in range(6):
        body = {"external_id": f"r{n}", "member_id": member["id"], "amount": 500, "currency": "EUR"}
        purchase = client.post("/api/v1/purchases", json=body, headers=pos).json
        answered = _answer(shop_wifi, purchase, nps="8")
        assert answered.status_code == 303, n
        assert b"have been received" in shop_wifi.get(_path(purchase)).data, n
