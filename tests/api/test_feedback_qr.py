"""GET /purchases/{id}/feedback-qr: the purchase's feedback link as an SVG QR code."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def purchase(client, pos) -> dict:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=pos).json
    body = {"external_id": "q1", "member_id": member["id"], "amount": 1000, "currency": "EUR"}
    return client.post("/api/v1/purchases", json=body, headers=pos).json


def test_the_qr_code_is_an_svg_of_the_feedback_url(client, pos, purchase) -> None:
    r = client.get(f"/api/v1/purchases/{purchase['id']}/feedback-qr", headers=pos)
    assert r.status_code == 200 and r.mimetype == "image/svg+xml"
    svg = r.data.decode()
    assert svg.startswith("<svg") and "<path" in svg and "<script" not in svg
    assert re.search(r"<title>(.*?)</title>", svg).group(1) == purchase["feedback_url"]
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_the_qr_code_is_segno_s_code_for_the_link(client, pos, purchase) -> None:
    """The modules segno draws for the URL are the ones served (same URL, same code)."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(purchase["feedback_url"], error="m", micro=False).save(
        out, kind="svg", scale=4, border=4, xmldecl=False, title=purchase["feedback_url"]
    )
    r = client.get(f"/api/v1/purchases/{purchase['id']}/feedback-qr", headers=pos)
    assert r.data == out.getvalue()


def test_an_unknown_purchase_is_404_and_a_key_is_needed(client, pos, api_key, purchase) -> None:
    missing = client.get("/api/v1/purchases/999999/feedback-qr", headers=pos)
    assert missing.status_code == 404 and missing.json["code"] == "not_found"
    assert client.get(f"/api/v1/purchases/{purchase['id']}/feedback-qr").status_code == 401
    reports = api_key("reports")
    r = client.get(f"/api/v1/purchases/{purchase['id']}/feedback-qr", headers=reports)
    assert r.status_code == 403
