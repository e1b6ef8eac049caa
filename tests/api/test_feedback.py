"""Feedback: POST /feedback, the receipt's feedback link, and GET /metrics/feedback.

Arithmetic of metrics.md, hand-computed (period 2026-03-01..2026-03-31):
NPS answers 10, 9, 8, 7, 6, 0, 3 → promoters 2, detractors 3 of 7: (2 − 3) / 7 × 100 = −14.2857…
→ −14.3. CES 1, 2, 7 → 10 / 3 = 3.333… → 3.33. CSAT 5, 4, 3, 1 → 2 of 4 = 50.0.
Records: 8 (one with a comment only). A record dated 2026-02-28 23:59:59 and one dated
2026-04-01 00:00:00 are outside the period.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from loyalty.extensions import db
from loyalty.models import Feedback, Purchase


@pytest.fixture
def member(client, pos) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json


def buy(client, pos, member: dict, external_id: str, **extra) -> dict:
    body = {"external_id": external_id, "member_id": member["id"], "amount": 1000}
    r = client.post("/api/v1/purchases", json={**body, "currency": "EUR", **extra}, headers=pos)
    assert r.status_code in (200, 201), r.json
    return r.json


def set_created_at(app, model, row_id: int, at: datetime) -> None:
    with app.app_context():
        db.session.execute(update(model).where(model.id == row_id).values(created_at=at))
        db.session.commit()


def test_a_till_records_feedback_about_a_purchase_once(client, pos, member) -> None:
    p = buy(client, pos, member, "s1")
    body = {"card_number": member["card_number"], "purchase_id": p["id"], "nps": 9, "ces": 2}
    r = client.post("/api/v1/feedback", json=body, headers=pos)
    assert r.status_code == 201, r.json
    assert r.json["member_id"] == member["id"] and r.json["purchase_id"] == p["id"]
    assert (r.json["nps"], r.json["ces"], r.json["csat"], r.json["channel"]) == (9, 2, None, "api")
    again = client.post("/api/v1/feedback", json={**body, "nps": 3}, headers=pos)
    assert again.status_code == 409 and again.json["code"] == "feedback_exists"
    assert again.json["errors"] == {"purchase_id": [again.json["detail"]]}


def test_feedback_without_a_purchase_is_allowed_more_than_once(client, pos, member) -> None:
    for score in (5, 4):
        r = client.post(
            "/api/v1/feedback", json={"member_id": member["id"], "csat": score}, headers=pos
        )
        assert r.status_code == 201 and r.json["purchase_id"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"nps": 11}, "nps"),
        ({"nps": -1}, "nps"),
        ({"ces": 0}, "ces"),
        ({"ces": 8}, "ces"),
        ({"csat": 6}, "csat"),
        ({"csat": 0}, "csat"),
        ({"nps": "9"}, "nps"),
        ({"nps": 9.5}, "nps"),
        ({}, "nps"),  # nothing at all
        ({"comment": ""}, "comment"),
        ({"comment": "x" * 2001}, "comment"),
        ({"nps": 9, "stars": 5}, "stars"),
    ],
)
def test_bad_feedback_is_422_naming_the_field(client, pos, member, body, field) -> None:
    r = client.post("/api/v1/feedback", json={"member_id": member["id"], **body}, headers=pos)
    assert r.status_code == 422, r.json
    assert r.json["code"] == "validation_error" and field in r.json["errors"]


def test_feedback_refusals(client, pos, api_key, member) -> None:
    other = client.post("/api/v1/members", json={"name": "Bo"}, headers=pos).json
    theirs = buy(client, pos, other, "bo-1")
    r = client.post(
        "/api/v1/feedback",
        json={"member_id": member["id"], "purchase_id": theirs["id"], "nps": 7},
        headers=pos,
    )
    assert r.status_code == 422 and r.json["code"] == "member_mismatch"
    assert "purchase_id" in r.json["errors"]
    r = client.post(
        "/api/v1/feedback",
        json={"member_id": member["id"], "purchase_id": 999, "nps": 7},
        headers=pos,
    )
    assert r.status_code == 404 and r.json["code"] == "not_found"
    r = client.post("/api/v1/feedback", json={"nps": 7}, headers=pos)
    assert r.status_code == 422 and "card_number" in r.json["errors"]
    reports = api_key("reports")
    r = client.post("/api/v1/feedback", json={"member_id": member["id"], "nps": 7}, headers=reports)
    assert r.status_code == 403
    r = client.post("/api/v1/feedback", json={"member_id": member["id"], "nps": 7})
    assert r.status_code == 401


def test_the_receipt_link_takes_the_customers_scores_once_without_a_key(
    client, pos, member
) -> None:
    p = buy(client, pos, member, "s1")
    token = p["feedback_token"]
    assert isinstance(token, str) and 10 < len(token) < 80
    # the same token on a retried post and on the purchase record
    assert buy(client, pos, member, "s1")["feedback_token"] == token
    assert client.get(f"/api/v1/purchases/{p['id']}", headers=pos).json["feedback_token"] == token
    r = client.post(f"/api/v1/feedback/{token}", json={"nps": 10, "comment": "Quick!"})
    assert r.status_code == 201, r.json
    assert r.json == {
        "purchase_id": p["id"],
        "nps": 10,
        "ces": None,
        "csat": None,
        "comment": "Quick!",
        "created_at": r.json["created_at"],
    }
    again = client.post(f"/api/v1/feedback/{token}", json={"nps": 0})
    assert again.status_code == 409 and again.json["code"] == "feedback_exists"
    # and a till cannot add a second one for the same purchase either
    r = client.post(
        "/api/v1/feedback",
        json={"member_id": member["id"], "purchase_id": p["id"], "ces": 3},
        headers=pos,
    )
    assert r.status_code == 409


def test_a_tampered_or_foreign_token_is_404(client, pos, member) -> None:
    p = buy(client, pos, member, "s1")
    token = p["feedback_token"]
    payload, signature = token.split(".")
    for bad in (payload + "." + signature[::-1], "MjI." + signature, "nonsense", "a" * 150):
        r = client.post(f"/api/v1/feedback/{bad}", json={"nps": 9})
        assert r.status_code == 404 and r.json["code"] == "not_found", bad
    r = client.post(f"/api/v1/feedback/{token}", json={"nps": 12})
    assert r.status_code == 422 and "nps" in r.json["errors"]
    r = client.post(f"/api/v1/feedback/{token}", json={"member_id": 1, "nps": 9})
    assert r.status_code == 422 and "member_id" in r.json["errors"]


def test_a_token_is_valid_for_14_days_after_the_purchase(app, client, pos, member) -> None:
    fresh, old = buy(client, pos, member, "s1"), buy(client, pos, member, "s2")
    now = datetime.now(UTC)
    set_created_at(app, Purchase, fresh["id"], now - timedelta(days=13, hours=23))
    set_created_at(app, Purchase, old["id"], now - timedelta(days=14, seconds=1))
    r = client.post(f"/api/v1/feedback/{old['feedback_token']}", json={"csat": 4})
    assert r.status_code == 422 and r.json["code"] == "feedback_token_expired"
    assert (
        client.post(f"/api/v1/feedback/{fresh['feedback_token']}", json={"csat": 4}).status_code
        == 201
    )


def test_batch_results_carry_the_token(client, pos, member) -> None:
    items = [{"external_id": "b1", "member_id": member["id"], "amount": 500, "currency": "EUR"}]
    r = client.post("/api/v1/purchases/batch", json={"purchases": items}, headers=pos)
    token = r.json["results"][0]["feedback_token"]
    assert client.post(f"/api/v1/feedback/{token}", json={"ces": 1}).status_code == 201


ANSWERS = [  # (created_at, nps, ces, csat, comment)
    ("2026-03-01T00:00:00", 10, 1, 5, None),
    ("2026-03-05T10:00:00", 9, None, 4, None),
    ("2026-03-06T10:00:00", 8, 2, None, None),
    ("2026-03-07T10:00:00", 7, None, 3, None),
    ("2026-03-08T10:00:00", 6, 7, 1, None),
    ("2026-03-09T10:00:00", 0, None, None, None),
    ("2026-03-31T23:59:59", 3, None, None, None),
    ("2026-03-15T10:00:00", None, None, None, "Only a comment"),
    ("2026-02-28T23:59:59", 0, 7, 1, None),  # before the period
    ("2026-04-01T00:00:00", 0, 7, 1, None),  # after it
]


def test_feedback_metrics_match_the_hand_computation(app, client, pos, api_key, member) -> None:
    for at, nps, ces, csat, comment in ANSWERS:
        body = {"member_id": member["id"], "nps": nps, "ces": ces, "csat": csat, "comment": comment}
        r = client.post("/api/v1/feedback", json=body, headers=pos)
        assert r.status_code == 201, r.json
        set_created_at(app, Feedback, r.json["id"], datetime.fromisoformat(at).replace(tzinfo=UTC))
    r = client.get(
        "/api/v1/metrics/feedback?start=2026-03-01&end=2026-03-31", headers=api_key("reports")
    )
    assert r.status_code == 200, r.json
    assert r.json == {
        "start": "2026-03-01",
        "end": "2026-03-31",
        "nps": -14.3,
        "ces_average": 3.33,
        "csat": 50.0,
        "responses": {"total": 8, "nps": 7, "ces": 3, "csat": 4},
        "promoters": 2,
        "passives": 2,
        "detractors": 3,
        "definitions": "docs/metrics.md",
        "read_from": "primary",
        "replica_lag_seconds": None,
    }


def test_nps_rounds_half_away_from_zero_and_is_null_without_answers(
    app, client, pos, api_key, member
) -> None:
    # 16 answers: 3 promoters, 2 detractors → 1/16 × 100 = 6.25 → 6.3
    scores = [10, 9, 9, 0, 6] + [7] * 11
    for nps in scores:
        r = client.post(
            "/api/v1/feedback", json={"member_id": member["id"], "nps": nps}, headers=pos
        )
        set_created_at(app, Feedback, r.json["id"], datetime(2026, 5, 2, tzinfo=UTC))
    reports = api_key("reports")
    body = client.get(
        "/api/v1/metrics/feedback?start=2026-05-01&end=2026-05-31", headers=reports
    ).json
    assert body["nps"] == 6.3 and body["ces_average"] is None and body["csat"] is None
    empty = client.get(
        "/api/v1/metrics/feedback?start=2026-06-01&end=2026-06-30", headers=reports
    ).json
    assert (empty["nps"], empty["ces_average"], empty["csat"]) == (None, None, None)
    assert empty["responses"] == {"total": 0, "nps": 0, "ces": 0, "csat": 0}
    r = client.get("/api/v1/metrics/feedback?start=2026-06-30&end=2026-06-01", headers=reports)
    assert r.status_code == 422 and "end" in r.json["errors"]
    assert (
        client.get(
            "/api/v1/metrics/feedback?start=2026-06-01&end=2026-06-30", headers=pos
        ).status_code
        == 403
    )
