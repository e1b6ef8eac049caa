"""GET /metrics/segments and the member's own segment, against a hand classification.

as_of = 2026-06-30: the window is 2025-07-01 00:00 .. 2026-07-01 00:00 (365 days), the last 90
days start 2026-04-02 00:00. First matching rule wins.

member purchases (2026 unless said)      feedback (date: score)        segment
L      2025-06-30 23:59:59                                              lost
W      2025-07-01 00:00:00                                              at_risk (none in 90 d)
RN     05-01, 06-01                      05-02 NPS 10, 06-02 NPS 5      at_risk (NPS ≤ 6)
RC     05-01, 06-01                      05-02 CES 5, 06-02 NPS 10      at_risk (CES ≥ 5)
RO     2025-12-01, 06-01                 2025-06-01 NPS 2 (outside)     loyal
N      04-02 00:00:00, 06-01             06-02 NPS 10                   new (before ambassador)
NB     04-01 23:59:59, 06-01                                            loyal (not new)
A      2025-12-01, 06-01                 01-01 NPS 3, 06-02 NPS 9,      ambassador
                                         07-01 NPS 0 (after as_of)
D      2025-12-01 (voucher_codes), 06-01                                deal_seeker (1 of 2)
D2     2025-10-01, 2025-12-01 (voucher by order_ref), 06-01             loyal (1 of 3)
D3     01-10 (reward, by order_ref), 06-10                              deal_seeker
DV     2025-06-01 (voucher, outside), 01-01, 06-01                      loyal (0 of 2 in window)
O      2024-01-01, 06-15                                                occasional
F      07-01 00:00:00 (after as_of)                                     not counted
Z      none                                                             not counted
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from loyalty.extensions import db
from loyalty.models import Feedback
from tests.factories import goodwill_code

Y = "2026-"
PURCHASES = {
    "L": ["2025-06-30T23:59:59"],
    "W": ["2025-07-01T00:00:00"],
    "RN": [Y + "05-01T12:00:00", Y + "06-01T12:00:00"],
    "RC": [Y + "05-01T12:00:00", Y + "06-01T12:00:00"],
    "RO": ["2025-12-01T12:00:00", Y + "06-01T12:00:00"],
    "N": [Y + "04-02T00:00:00", Y + "06-01T12:00:00"],
    "NB": [Y + "04-01T23:59:59", Y + "06-01T12:00:00"],
    "A": ["2025-12-01T12:00:00", Y + "06-01T12:00:00"],
    "D": ["2025-12-01T12:00:00", Y + "06-01T12:00:00"],
    "D2": ["2025-10-01T12:00:00", "2025-12-01T12:00:00", Y + "06-01T12:00:00"],
    "D3": [Y + "01-10T12:00:00", Y + "06-10T12:00:00"],
    "DV": ["2025-06-01T12:00:00", Y + "01-01T12:00:00", Y + "06-01T12:00:00"],
    "O": ["2024-01-01T12:00:00", Y + "06-15T12:00:00"],
    "F": [Y + "07-01T00:00:00"],
    "Z": [],
}
FEEDBACK = [  # member, when, scores
    ("RN", Y + "05-02T10:00:00", {"nps": 10}),
    ("RN", Y + "06-02T10:00:00", {"nps": 5}),
    ("RC", Y + "05-02T10:00:00", {"ces": 5}),
    ("RC", Y + "06-02T10:00:00", {"nps": 10}),
    ("RO", "2025-06-01T10:00:00", {"nps": 2}),
    ("N", Y + "06-02T10:00:00", {"nps": 10}),
    ("A", Y + "01-01T10:00:00", {"nps": 3}),
    ("A", Y + "06-02T10:00:00", {"nps": 9}),
    ("A", Y + "07-01T00:00:00", {"nps": 0}),
]
VOUCHER_ON = {"D": 0, "DV": 0}  # purchase index that names a voucher in voucher_codes
EXPECTED = {
    "lost": 1,
    "at_risk": 3,
    "new": 1,
    "ambassador": 1,
    "deal_seeker": 2,
    "loyal": 4,
    "occasional": 1,
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_every_segment_rule_and_its_precedence(app, client, pos, admin, api_key) -> None:
    ids = {}
    for name, dates in PURCHASES.items():
        m = client.post("/api/v1/members", json={"name": name}, headers=pos).json
        ids[name] = m["id"]
        for i, at in enumerate(dates):
            body = {
                "external_id": f"{name}-{i}",
                "member_id": m["id"],
                "amount": 1000,
                "currency": "EUR",
                "occurred_at": at + "+00:00",
            }
            if VOUCHER_ON.get(name) == i:
                body["voucher_codes"] = [goodwill_code(client, admin, m["id"])]
            r = client.post("/api/v1/purchases", json=body, headers=pos)
            assert r.status_code == 201, r.json
    # D2: a voucher redeemed on its own at checkout, naming the purchase by order_ref
    code = goodwill_code(client, admin, ids["D2"])
    body = {"order_ref": "D2-1", "amount": 1000, "currency": "EUR", "member_id": ids["D2"]}
    r = client.post(f"/api/v1/vouchers/{code}/redeem", json=body, headers=pos)
    assert r.status_code == 200, r.json
    # D3: a reward redeemed at the till for its first purchase
    reward = client.post(
        "/api/v1/rewards",
        json={"name": "Cookie", "kind": "free_item", "sku": "C", "points_cost": 5},
        headers=admin,
    ).json
    body = {"member_id": ids["D3"], "reward_id": reward["id"], "order_ref": "D3-0", "instant": True}
    r = client.post("/api/v1/redemptions", json=body, headers=pos)
    assert r.status_code == 201 and r.json["status"] == "redeemed", r.json
    for name, at, scores in FEEDBACK:
        r = client.post("/api/v1/feedback", json={"member_id": ids[name], **scores}, headers=pos)
        assert r.status_code == 201, r.json
        with app.app_context():
            db.session.execute(
                update(Feedback).where(Feedback.id == r.json["id"]).values(created_at=utc(at))
            )
            db.session.commit()

    r = client.get("/api/v1/metrics/segments?as_of=2026-06-30", headers=api_key("reports"))
    assert r.status_code == 200, r.json
    assert r.json == {
        "as_of": "2026-06-30",
        **EXPECTED,
        "segments": EXPECTED,
        "members": 13,
        "definitions": "docs/metrics.md",
        "read_from": "primary",
        "replica_lag_seconds": None,
    }
    # a year earlier only L, DV (first purchases in the 90 days to 2025-06-30: new) and O (2024:
    # none in the 365 days since: lost) had bought
    before = client.get("/api/v1/metrics/segments?as_of=2025-06-30", headers=api_key("reports"))
    assert before.json["segments"] == {**dict.fromkeys(EXPECTED, 0), "lost": 1, "new": 2}


def test_segments_args_are_checked(client, api_key, pos) -> None:
    reports = api_key("reports")
    for query in ("", "?as_of=2026-13-01", "?as_of=yesterday"):
        r = client.get("/api/v1/metrics/segments" + query, headers=reports)
        assert r.status_code == 422 and "as_of" in r.json["errors"], query
    assert client.get("/api/v1/metrics/segments?as_of=2026-01-01", headers=pos).status_code == 403


def test_a_member_reads_their_own_segment_today(client, pos) -> None:
    now = datetime.now(UTC)
    fresh = client.post("/api/v1/members", json={"name": "Fresh"}, headers=pos).json
    gone = client.post("/api/v1/members", json={"name": "Gone"}, headers=pos).json
    never = client.post("/api/v1/members", json={"name": "Never"}, headers=pos).json
    for m, at in ((fresh, now - timedelta(minutes=5)), (gone, now - timedelta(days=400))):
        body = {
            "external_id": f"x-{m['id']}",
            "member_id": m["id"],
            "amount": 500,
            "currency": "EUR",
            "occurred_at": at.isoformat(),
        }
        assert client.post("/api/v1/purchases", json=body, headers=pos).status_code == 201
    segment = {
        m["name"]: client.get(f"/api/v1/members/{m['id']}", headers=pos).json["segment"]
        for m in (fresh, gone, never)
    }
    assert segment == {"Fresh": "new", "Gone": "lost", "Never": None}
