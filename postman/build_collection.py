"""Writes loyalty.postman_collection.json and loyalty.postman_environment.json.

The collection is the source of truth newman runs; this script is how we edit it (a test fails when
the JSON and this file disagree). Run: `.venv/bin/python postman/build_collection.py`.
Requests run in order and pass ids along in collection variables.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROBLEM = """
pm.test("problem+json with a code", () => {
  pm.expect(pm.response.headers.get("Content-Type")).to.include("application/problem+json");
  const b = pm.response.json();
  pm.expect(b).to.have.all.keys("type", "title", "status", "detail", "code", "errors");
  pm.expect(b.status).to.eql(pm.response.code);
});
"""


def status(code: int) -> str:
    return f'pm.test("status {code}", () => pm.response.to.have.status({code}));\n'


def code(value: str) -> str:
    return f'pm.test("code {value}", () => pm.expect(pm.response.json().code).to.eql("{value}"));\n'


def request(
    name: str,
    method: str,
    path: str,
    *,
    key: str | None = "pos_key",
    body: object = None,
    raw: str | None = None,
    headers: dict[str, str] | None = None,
    tests: str = "",
    prerequest: str = "",
) -> dict:
    header = [{"key": k, "value": v} for k, v in (headers or {}).items()]
    if key:
        header.append({"key": "Authorization", "value": f"Bearer {{{{{key}}}}}"})
    item: dict = {
        "name": name,
        "request": {
            "method": method,
            "header": header,
            "url": {
                "raw": "{{base_url}}" + path,
                "host": ["{{base_url}}"],
                "path": [p for p in path.split("?")[0].split("/") if p],
            },
        },
        "event": [
            {
                "listen": "test",
                "script": {"type": "text/javascript", "exec": tests.strip().splitlines()},
            }
        ],
    }
    if "?" in path:
        item["request"]["url"]["query"] = [
            {"key": kv.split("=")[0], "value": kv.split("=", 1)[1]}
            for kv in path.split("?", 1)[1].split("&")
        ]
    if prerequest:
        item["event"].append(
            {
                "listen": "prerequest",
                "script": {"type": "text/javascript", "exec": prerequest.strip().splitlines()},
            }
        )
    if body is not None or raw is not None:
        header.append({"key": "Content-Type", "value": "application/json"})
        item["request"]["body"] = {
            "mode": "raw",
            "raw": raw if raw is not None else json.dumps(body, indent=2),
        }
    return item


LUHN = """
function luhnValid(n) {
  let sum = 0;
  for (let i = 0; i < n.length; i++) {
    let d = Number(n[n.length - 1 - i]);
    if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
  }
  return sum % 10 === 0;
}
"""

ITEMS = [
    # ---------------------------------------------------------------- service
    request(
        "healthz",
        "GET",
        "/healthz",
        key=None,
        tests=status(200)
        + 'pm.test("ok", () => pm.expect(pm.response.json().status).to.eql("ok"));',
        prerequest='pm.collectionVariables.set("run", String(Date.now()) + String(Math.floor(Math.random() * 1e6)));',
    ),
    request("readyz", "GET", "/readyz", key=None, tests=status(200)),
    request(
        "openapi.json",
        "GET",
        "/api/v1/openapi.json",
        key=None,
        tests=status(200)
        + 'pm.test("OpenAPI 3", () => pm.expect(pm.response.json().openapi).to.match(/^3\\./));',
    ),
    request("docs", "GET", "/api/v1/docs", key=None, tests=status(200)),
    # ---------------------------------------------------------------- auth and errors
    request(
        "no key → 401",
        "GET",
        "/api/v1/program",
        key=None,
        tests=status(401) + PROBLEM + code("unauthorized"),
    ),
    request(
        "unknown key → 401",
        "GET",
        "/api/v1/program",
        key="bogus_key",
        tests=status(401) + code("unauthorized"),
    ),
    request(
        "pos key on admin route → 403",
        "PUT",
        "/api/v1/program",
        body={"points_per_unit": 1},
        tests=status(403) + PROBLEM + code("forbidden"),
    ),
    request(
        "unknown route → 404",
        "GET",
        "/api/v1/nothing-here",
        tests=status(404) + PROBLEM + code("not_found"),
    ),
    request(
        "invalid JSON → 400",
        "POST",
        "/api/v1/members",
        raw='{"name": ',
        tests=status(400) + PROBLEM + code("invalid_json"),
    ),
    request(
        "body over 1 MiB → 413",
        "POST",
        "/api/v1/members",
        raw='{"name": "{{big}}"}',
        prerequest='pm.variables.set("big", "x".repeat(2 * 1024 * 1024));',
        tests=status(413) + PROBLEM + code("payload_too_large"),
    ),
    # ---------------------------------------------------------------- programme
    request(
        "get programme (reports)",
        "GET",
        "/api/v1/program",
        key="reports_key",
        tests=status(200)
        + """
pm.test("programme fields", () => {
  const p = pm.response.json();
  pm.expect(p).to.include.keys("currency", "currency_exponent", "points_per_unit", "rounding",
    "points_expire_after_days", "reservation_minutes", "tiers");
  pm.collectionVariables.set("currency", p.currency);
});""",
    ),
    request(
        "put programme (admin)",
        "PUT",
        "/api/v1/program",
        key="admin_key",
        body={"name": "Demo shop", "points_per_unit": 1, "rounding": "down"},
        tests=status(200)
        + """
pm.test("changed", () => pm.expect(pm.response.json().name).to.eql("Demo shop"));""",
    ),
    request(
        "put programme: bad values → 422",
        "PUT",
        "/api/v1/program",
        key="admin_key",
        body={"currency": "XXZ", "rounding": "sideways"},
        tests=status(422)
        + PROBLEM
        + code("validation_error")
        + """
pm.test("fields named", () => pm.expect(pm.response.json().errors).to.include.keys("currency", "rounding"));""",
    ),
    # ---------------------------------------------------------------- members
    request(
        "enrol",
        "POST",
        "/api/v1/members",
        body={"name": "Ann Newman", "email": "ann.{{run}}@example.com", "marketing_consent": True},
        headers={"Idempotency-Key": "enrol-{{run}}"},
        tests=status(201)
        + LUHN
        + """
const m = pm.response.json();
pm.test("member with a valid card and zero balance", () => {
  pm.expect(luhnValid(m.card_number)).to.be.true;
  pm.expect(m.cards).to.eql([{card_number: m.card_number, status: "active"}]);
  pm.expect(m.balance).to.eql({points: 0, held: 0, available: 0});
  pm.expect(m.email).to.eql("ann." + pm.collectionVariables.get("run") + "@example.com");
});
pm.collectionVariables.set("member_id", m.id);
pm.collectionVariables.set("card_number", m.card_number);
pm.collectionVariables.set("enrol_body", JSON.stringify(m));""",
    ),
    request(
        "enrol retried with the same Idempotency-Key",
        "POST",
        "/api/v1/members",
        body={"name": "Ann Newman", "email": "ann.{{run}}@example.com", "marketing_consent": True},
        headers={"Idempotency-Key": "enrol-{{run}}"},
        tests=status(201)
        + """
pm.test("the first response again", () => {
  pm.expect(pm.response.headers.get("Idempotent-Replayed")).to.eql("true");
  pm.expect(pm.response.json()).to.eql(JSON.parse(pm.collectionVariables.get("enrol_body")));
});""",
    ),
    request(
        "same Idempotency-Key, other body → 409",
        "POST",
        "/api/v1/members",
        body={"name": "Someone else"},
        headers={"Idempotency-Key": "enrol-{{run}}"},
        tests=status(409) + PROBLEM + code("idempotency_key_reused"),
    ),
    request(
        "duplicate e-mail → 409",
        "POST",
        "/api/v1/members",
        body={"email": "ANN.{{run}}@example.com"},
        tests=status(409) + PROBLEM + code("email_taken"),
    ),
    request(
        "mistyped pre-printed card → 422",
        "POST",
        "/api/v1/members",
        body={"card_number": "9900000000000003"},
        tests=status(422)
        + PROBLEM
        + code("invalid_card_number")
        + """
pm.test("field named", () => pm.expect(pm.response.json().errors).to.have.key("card_number"));""",
    ),
    request(
        "unknown field → 422",
        "POST",
        "/api/v1/members",
        body={"name": "x", "nickname": "y"},
        tests=status(422)
        + code("validation_error")
        + """
pm.test("field named", () => pm.expect(pm.response.json().errors).to.have.key("nickname"));""",
    ),
    request(
        "card lookup (till)",
        "GET",
        "/api/v1/cards/{{card_number}}",
        tests=status(200)
        + """
pm.test("member and zero balance", () => {
  const c = pm.response.json();
  pm.expect(c.status).to.eql("active");
  pm.expect(c.member.id).to.eql(Number(pm.collectionVariables.get("member_id")));
  pm.expect(c.balance).to.eql({points: 0, held: 0, available: 0});
});""",
    ),
    request(
        "mistyped card lookup → 422",
        "GET",
        "/api/v1/cards/9900000000000003",
        tests=status(422) + code("invalid_card_number"),
    ),
    request(
        "unknown card → 404",
        "GET",
        "/api/v1/cards/9900000000000010",
        tests=status(404) + code("not_found"),
    ),
    request(
        "get member",
        "GET",
        "/api/v1/members/{{member_id}}",
        key="webshop_key",
        tests=status(200)
        + """
pm.test("same member", () => pm.expect(pm.response.json().card_number).to.eql(pm.collectionVariables.get("card_number")));""",
    ),
    request(
        "get member with a reports key → 403",
        "GET",
        "/api/v1/members/{{member_id}}",
        key="reports_key",
        tests=status(403) + code("forbidden"),
    ),
    request(
        "unknown member → 404",
        "GET",
        "/api/v1/members/999999999",
        tests=status(404) + code("not_found"),
    ),
    request(
        "search by e-mail (admin)",
        "GET",
        "/api/v1/members?email=ann.{{run}}@example.com",
        key="admin_key",
        tests=status(200)
        + """
pm.test("one hit with a total", () => {
  pm.expect(pm.response.json().length).to.eql(1);
  pm.expect(pm.response.headers.get("X-Total-Count")).to.eql("1");
});""",
    ),
    request(
        "search by card (admin)",
        "GET",
        "/api/v1/members?card_number={{card_number}}",
        key="admin_key",
        tests=status(200)
        + 'pm.test("one hit", () => pm.expect(pm.response.json().length).to.eql(1));',
    ),
    request(
        "search with page_size over 100 → 422",
        "GET",
        "/api/v1/members?page_size=101",
        key="admin_key",
        tests=status(422) + PROBLEM,
    ),
    request(
        "patch member (admin)",
        "PATCH",
        "/api/v1/members/{{member_id}}",
        key="admin_key",
        body={"phone": "+31 6 {{run_phone}}"},
        prerequest="""
pm.variables.set("run_phone", "1" + String(pm.collectionVariables.get("run")).slice(-7));""",
        tests=status(200)
        + """
pm.test("phone in E.164", () => pm.expect(pm.response.json().phone).to.match(/^\\+316\\d{8}$/));""",
    ),
    request(
        "issue a second card (admin)",
        "POST",
        "/api/v1/members/{{member_id}}/cards",
        key="admin_key",
        tests=status(201)
        + """
const c = pm.response.json();
pm.test("new active card", () => pm.expect(c.status).to.eql("active"));
pm.collectionVariables.set("second_card", c.card_number);""",
    ),
    request(
        "block the first card (admin)",
        "POST",
        "/api/v1/cards/{{card_number}}/block",
        key="admin_key",
        body={"reason": "lost"},
        tests=status(200)
        + """
pm.test("blocked", () => pm.expect(pm.response.json().status).to.eql("blocked"));""",
    ),
    request(
        "block it again → 409",
        "POST",
        "/api/v1/cards/{{card_number}}/block",
        key="admin_key",
        tests=status(409) + code("card_already_blocked"),
    ),
    request(
        "member now shows the second card",
        "GET",
        "/api/v1/members/{{member_id}}",
        tests=status(200)
        + """
pm.test("first active card is the new one", () =>
  pm.expect(pm.response.json().card_number).to.eql(pm.collectionVariables.get("second_card")));""",
    ),
    request(
        "erase member (admin)",
        "DELETE",
        "/api/v1/members/{{member_id}}",
        key="admin_key",
        tests=status(204),
    ),
    request(
        "erased member keeps card and balance",
        "GET",
        "/api/v1/members/{{member_id}}",
        tests=status(200)
        + """
pm.test("personal data gone", () => {
  const m = pm.response.json();
  pm.expect([m.name, m.email, m.phone]).to.eql([null, null, null]);
  pm.expect(m.erased_at).to.be.a("string");
  pm.expect(m.card_number).to.eql(pm.collectionVariables.get("second_card"));
});""",
    ),
]

COLLECTION = {
    "info": {
        "name": "Loyalty API v1",
        "description": "Every endpoint with checks; run by `make test` with newman against a live server.",
        "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
    },
    "item": ITEMS,
    "variable": [{"key": "run", "value": ""}],
}

ENVIRONMENT = {
    "name": "Loyalty local",
    "values": [
        {"key": "base_url", "value": "http://127.0.0.1:5000", "enabled": True},
        {"key": "admin_key", "value": "", "enabled": True},
        {"key": "pos_key", "value": "", "enabled": True},
        {"key": "webshop_key", "value": "", "enabled": True},
        {"key": "reports_key", "value": "", "enabled": True},
        {"key": "bogus_key", "value": "lk_not-a-key", "enabled": True},
    ],
}


def render() -> dict[str, str]:
    return {
        "loyalty.postman_collection.json": json.dumps(COLLECTION, indent=2, ensure_ascii=False)
        + "\n",
        "loyalty.postman_environment.json": json.dumps(ENVIRONMENT, indent=2) + "\n",
    }


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote postman/{name}")
