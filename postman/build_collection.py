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
    "points_expire_after_days", "expiry_policy", "reservation_minutes", "tiers");
  pm.expect(p.expiry_policy).to.eql(
    p.points_expire_after_days === null ? null : {days: p.points_expire_after_days});
  pm.collectionVariables.set("currency", p.currency);
  pm.collectionVariables.set("currency_exponent", p.currency_exponent);
  pm.collectionVariables.set("other_currency", p.currency === "USD" ? "EUR" : "USD");
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
        "put programme: a tier table",
        "PUT",
        "/api/v1/program",
        key="admin_key",
        body={
            "tiers": [
                {"name": "Silver", "qualifying_spend": 0, "multiplier": 1},
                {
                    "name": "Gold",
                    "qualifying_spend": 50000,
                    "multiplier": 1.5,
                    "benefits": ["free delivery"],
                },
            ]
        },
        tests=status(200)
        + """
const t = pm.response.json().tiers;
pm.test("stored as sent, benefits defaulted", () => {
  pm.expect(t.map(x => [x.name, x.qualifying_spend, x.multiplier])).to.eql([["Silver", 0, 1], ["Gold", 50000, 1.5]]);
  pm.expect(t[0].benefits).to.eql([]);
});""",
    ),
    request(
        "put programme: dry run of a tier table",
        "PUT",
        "/api/v1/program?dry_run=true",
        key="admin_key",
        body={
            "tiers": [
                {"name": "Silver", "qualifying_spend": 0, "multiplier": 1},
                {"name": "Gold", "qualifying_spend": 1, "multiplier": 2},
            ],
            "tier_downgrade": "end_of_period",
        },
        tests=status(200)
        + """
const p = pm.response.json();
pm.test("who would move, listed", () => {
  pm.expect(p.tier_moves_count).to.be.a("number");
  pm.expect(p.tier_moves).to.be.an("array");
  pm.expect(p.tier_downgrade).to.eql("end_of_period");
});
pm.sendRequest({
  url: pm.variables.get("base_url") + "/api/v1/program",
  header: {Authorization: "Bearer " + pm.variables.get("admin_key")},
}, (err, res) => pm.test("nothing written", () => {
  pm.expect(res.json().tiers[1].qualifying_spend).to.eql(50000);
  pm.expect(res.json()).to.not.have.any.keys("tier_moves");
}));""",
    ),
    request(
        "put programme: what GET gave, sent back",
        "PUT",
        "/api/v1/program",
        key="admin_key",
        prerequest="""
pm.sendRequest({
  url: pm.variables.get("base_url") + "/api/v1/program",
  header: {Authorization: "Bearer " + pm.variables.get("admin_key")},
}, (err, res) => pm.variables.set("program_body", JSON.stringify(res.json())));""",
        raw="{{program_body}}",
        tests=status(200)
        + """
pm.test("taken back unchanged", () => pm.expect(pm.response.json()).to.eql(JSON.parse(pm.variables.get("program_body"))));""",
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
  pm.expect(m.balance).to.eql({points: 0, held: 0, available: 0, pending: 0});
  pm.expect(m.vouchers_issued).to.eql([]);
});
pm.test("a till reads no contact data (admin only)", () => {
  pm.expect(m).to.not.have.any.keys("email", "phone", "marketing_consent", "external_ref");
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
  pm.expect(c.balance).to.eql({points: 0, held: 0, available: 0, pending: 0});
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
    # ---------------------------------------------------------------- purchases and the ledger
    request(
        "quote a basket (till)",
        "POST",
        "/api/v1/checkout/quote",
        body={
            "card_number": "{{card_number}}",
            "amount": 2599,
            "currency": "{{currency}}",
            "voucher_codes": ["ABCD-EFGH-JK"],
        },
        tests=status(200)
        + """
const q = pm.response.json();
const expected = Math.floor(2599 / Math.pow(10, Number(pm.collectionVariables.get("currency_exponent"))));
pm.collectionVariables.set("expected_points", expected);
pm.test("earns floor(amount × rate)", () => pm.expect(q.points_earned).to.eql(expected));
pm.test("no side effects", () => pm.expect(q.balance.points).to.eql(0));
pm.test("balance after", () => pm.expect(q.balance_after.points).to.eql(expected));
pm.test("each voucher code answered as redeem would", () => {
  pm.expect(q.vouchers.length).to.eql(1);
  pm.expect(q.vouchers[0].applicable).to.be.false;
  pm.expect(q.vouchers[0].refusal.code).to.eql("not_found");
});""",
    ),
    request(
        "purchase",
        "POST",
        "/api/v1/purchases",
        body={
            "external_id": "till-{{run}}-1",
            "card_number": "{{card_number}}",
            "amount": 2599,
            "currency": "{{currency}}",
            "store_id": "store-1",
            "lines": [
                {"sku": "COFFEE-1KG", "category": "coffee", "quantity": 1, "unit_price": 2599}
            ],
        },
        headers={"Idempotency-Key": "purchase-{{run}}-1"},
        tests=status(201)
        + """
const p = pm.response.json();
const expected = Number(pm.collectionVariables.get("expected_points"));
pm.test("points earned as quoted", () => pm.expect(p.points_earned).to.eql(expected));
pm.test("balance has them", () => pm.expect(p.balance).to.eql({points: expected, held: 0, available: expected, pending: 0}));
pm.test("no vouchers yet", () => pm.expect(p.vouchers_issued).to.eql([]));
pm.collectionVariables.set("purchase_id", p.id);
pm.collectionVariables.set("feedback_token", p.feedback_token);
pm.test("a feedback token to print", () => pm.expect(p.feedback_token).to.be.a("string"));
pm.test("a feedback page to print as a QR code", () => pm.expect(p.feedback_url.startsWith("http") && p.feedback_url.endsWith("/f/" + p.feedback_token)).to.be.true);
pm.collectionVariables.set("purchase_body", JSON.stringify(p));""",
    ),
    request(
        "purchase retried with the same key",
        "POST",
        "/api/v1/purchases",
        body={
            "external_id": "till-{{run}}-1",
            "card_number": "{{card_number}}",
            "amount": 2599,
            "currency": "{{currency}}",
            "store_id": "store-1",
            "lines": [
                {"sku": "COFFEE-1KG", "category": "coffee", "quantity": 1, "unit_price": 2599}
            ],
        },
        headers={"Idempotency-Key": "purchase-{{run}}-1"},
        tests=status(201)
        + """
pm.test("same response, replayed", () => {
  pm.expect(pm.response.headers.get("Idempotent-Replayed")).to.eql("true");
  pm.expect(pm.response.json()).to.eql(JSON.parse(pm.collectionVariables.get("purchase_body")));
});""",
    ),
    request(
        "same external_id without a key → 200, earns nothing",
        "POST",
        "/api/v1/purchases",
        body={
            "external_id": "till-{{run}}-1",
            "card_number": "{{card_number}}",
            "amount": 2599,
            "currency": "{{currency}}",
            "lines": [
                {"sku": "COFFEE-1KG", "category": "coffee", "quantity": 1, "unit_price": 2599}
            ],
        },
        tests=status(200)
        + """
const p = pm.response.json();
const expected = Number(pm.collectionVariables.get("expected_points"));
pm.test("the existing purchase", () => pm.expect(p.id).to.eql(Number(pm.collectionVariables.get("purchase_id"))));
pm.test("balance unchanged", () => pm.expect(p.balance.points).to.eql(expected));""",
    ),
    request(
        "same external_id with another amount → 409",
        "POST",
        "/api/v1/purchases",
        body={
            "external_id": "till-{{run}}-1",
            "card_number": "{{card_number}}",
            "amount": 2600,
            "currency": "{{currency}}",
            "lines": [
                {"sku": "COFFEE-1KG", "category": "coffee", "quantity": 1, "unit_price": 2599}
            ],
        },
        tests=status(409)
        + PROBLEM
        + code("external_id_conflict")
        + """
pm.test("names the field that differs", () =>
  pm.expect(Object.keys(pm.response.json().errors)).to.eql(["amount"]));""",
    ),
    request(
        "purchase in another currency → 422",
        "POST",
        "/api/v1/purchases",
        body={
            "external_id": "till-{{run}}-x",
            "card_number": "{{card_number}}",
            "amount": 100,
            "currency": "{{other_currency}}",
        },
        tests=status(422) + PROBLEM + code("currency_mismatch"),
    ),
    request(
        "purchase for an unknown card → 404",
        "POST",
        "/api/v1/purchases",
        body={
            "external_id": "till-{{run}}-y",
            "card_number": "9900000000000010",
            "amount": 100,
            "currency": "{{currency}}",
        },
        tests=status(404) + code("not_found"),
    ),
    request(
        "get purchase",
        "GET",
        "/api/v1/purchases/{{purchase_id}}",
        tests=status(200)
        + """
const p = pm.response.json();
pm.test("lines and one earn entry", () => {
  pm.expect(p.lines.length).to.eql(1);
  pm.expect(p.ledger_entries.map(e => e.kind)).to.eql(["earn"]);
});""",
    ),
    request(
        "return half",
        "POST",
        "/api/v1/purchases/{{purchase_id}}/returns",
        body={"external_id": "return-{{run}}-1", "amount": 1300},
        tests=status(201)
        + """
const r = pm.response.json();
const expected = Number(pm.collectionVariables.get("expected_points"));
const reversed = Math.floor(expected * 1300 / 2599);
pm.test("pro rata, rounded down", () => pm.expect(r.points_reversed).to.eql(reversed));
pm.test("balance after the return", () => pm.expect(r.balance.points).to.eql(expected - reversed));""",
    ),
    request(
        "return more than is left → 422",
        "POST",
        "/api/v1/purchases/{{purchase_id}}/returns",
        body={"external_id": "return-{{run}}-2", "amount": 2599},
        tests=status(422) + PROBLEM + code("return_exceeds_purchase"),
    ),
    request(
        "return a sku the purchase did not have → 422",
        "POST",
        "/api/v1/purchases/{{purchase_id}}/returns",
        body={
            "external_id": "return-{{run}}-4",
            "amount": 1,
            "lines": [{"sku": "NOT-SOLD", "quantity": 1}],
        },
        tests=status(422)
        + PROBLEM
        + code("sku_not_in_purchase")
        + """
pm.test("the line named", () => pm.expect(pm.response.json().errors).to.have.key("lines.0.sku"));""",
    ),
    request(
        "return of an unknown purchase → 404",
        "POST",
        "/api/v1/purchases/999999999/returns",
        body={"external_id": "return-{{run}}-3", "amount": 1},
        tests=status(404) + code("not_found"),
    ),
    request(
        "batch from an offline till",
        "POST",
        "/api/v1/purchases/batch",
        body={
            "purchases": [
                {
                    "external_id": "till-{{run}}-2",
                    "card_number": "{{card_number}}",
                    "amount": 1000,
                    "currency": "{{currency}}",
                    "occurred_at": "2026-01-02T10:00:00+01:00",
                },
                {
                    "external_id": "till-{{run}}-1",
                    "card_number": "{{card_number}}",
                    "amount": 2599,
                    "currency": "{{currency}}",
                    "lines": [
                        {
                            "sku": "COFFEE-1KG",
                            "category": "coffee",
                            "quantity": 1,
                            "unit_price": 2599,
                        }
                    ],
                },
                {
                    "external_id": "till-{{run}}-3",
                    "card_number": "{{card_number}}",
                    "amount": -5,
                    "currency": "{{currency}}",
                },
            ]
        },
        tests=status(200)
        + """
const res = pm.response.json().results;
pm.test("created, duplicate, rejected, in order", () =>
  pm.expect(res.map(r => r.status)).to.eql(["created", "duplicate", "rejected"]));
pm.test("the rejection names the field", () => pm.expect(res[2].error.errors).to.have.key("amount"));
pm.test("the rejection is a problem", () => pm.expect(res[2].error.code).to.eql("validation_error"));""",
    ),
    request(
        "adjust points (admin)",
        "POST",
        "/api/v1/members/{{member_id}}/adjustments",
        key="admin_key",
        body={"points": 10, "reason": "goodwill after a complaint"},
        tests=status(201)
        + """
const e = pm.response.json();
pm.test("an adjust entry", () => {
  pm.expect(e.kind).to.eql("adjust");
  pm.expect(e.points).to.eql(10);
  pm.expect(e.note).to.eql("goodwill after a complaint");
  pm.expect(e.balance.points).to.eql(e.balance_after);
});""",
    ),
    request(
        "adjustment without a reason → 422",
        "POST",
        "/api/v1/members/{{member_id}}/adjustments",
        key="admin_key",
        body={"points": 10},
        tests=status(422) + code("validation_error"),
    ),
    request(
        "adjustment below zero → 422",
        "POST",
        "/api/v1/members/{{member_id}}/adjustments",
        key="admin_key",
        body={"points": -99999, "reason": "typo"},
        tests=status(422) + code("insufficient_points"),
    ),
    request(
        "adjustment above the ceiling → 422",
        "POST",
        "/api/v1/members/{{member_id}}/adjustments",
        key="admin_key",
        body={"points": -1000000, "reason": "typo"},
        tests=status(422) + code("limit_exceeded"),
    ),
    request(
        "adjustment with a pos key → 403",
        "POST",
        "/api/v1/members/{{member_id}}/adjustments",
        body={"points": 1, "reason": "x"},
        tests=status(403) + code("forbidden"),
    ),
    request(
        "ledger (admin)",
        "GET",
        "/api/v1/members/{{member_id}}/ledger",
        key="admin_key",
        tests=status(200)
        + """
const entries = pm.response.json();
pm.test("newest first: adjust, earn (batch), reverse, earn", () =>
  pm.expect(entries.map(e => e.kind)).to.eql(["adjust", "earn", "reverse", "earn"]));
pm.test("balance_after chains", () => {
  for (let i = 0; i < entries.length - 1; i++) {
    pm.expect(entries[i].balance_after).to.eql(entries[i + 1].balance_after + entries[i].points);
  }
  pm.expect(entries[entries.length - 1].balance_after).to.eql(entries[entries.length - 1].points);
});
pm.test("total in the header", () => pm.expect(pm.response.headers.get("X-Total-Count")).to.eql("4"));""",
    ),
    request(
        "points expiring within 90 days",
        "GET",
        "/api/v1/members/{{member_id}}/expiring?days=90",
        tests=status(200)
        + """
const body = pm.response.json();
pm.test("the lots and their sum", () => {
  pm.expect(body.days).to.eql(90);
  pm.expect(body.points).to.eql(body.lots.reduce((sum, lot) => sum + lot.points, 0));
});""",
    ),
    request(
        "expiring: days out of range is 422",
        "GET",
        "/api/v1/members/{{member_id}}/expiring?days=-1",
        tests=status(422)
        + code("validation_error")
        + 'pm.test("names days", () => pm.expect(pm.response.json().errors).to.have.property("days"));',
    ),
    request(
        "audit trail of the member (admin)",
        "GET",
        "/api/v1/audit-entries?target_type=member&target_id={{member_id}}&action=points.adjust",
        key="admin_key",
        tests=status(200)
        + """
const adjust = pm.response.json()[0];
pm.test("the adjustment: who, why, before and after", () => {
  pm.expect(adjust.action).to.eql("points.adjust");
  pm.expect(adjust.reason).to.be.a("string");
  pm.expect(adjust.changes.points).to.have.lengthOf(2);
  pm.expect(adjust.changes.points[1] - adjust.changes.points[0]).to.eql(adjust.detail.points);
});""",
    ),
    request(
        "audit trail with a pos key → 403",
        "GET",
        "/api/v1/audit-entries",
        tests=status(403) + code("forbidden"),
    ),
    # ---------------------------------------------------------------- earning rules
    # created inactive (and deleted at the end), so the purchases of this run earn as before
    request(
        "add an earning rule (admin)",
        "POST",
        "/api/v1/earning-rules",
        key="admin_key",
        body={
            "name": "Double coffee {{run}}",
            "kind": "multiplier",
            "value": 2,
            "conditions": {"categories": ["coffee"], "weekdays": [1, 2, 3, 4, 5]},
            "max_points_per_purchase": 100,
            "budget": 10000,
            "active": False,
        },
        tests=status(201)
        + """
const r = pm.response.json();
pm.test("a versioned rule with its budget", () => {
  pm.expect(r.version).to.eql(1); pm.expect(r.value).to.eql(2); pm.expect(r.budget_left).to.eql(10000);
});
pm.collectionVariables.set("earning_rule_id", r.id);""",
    ),
    request(
        "earning rule with a multiplier of 1 → 422",
        "POST",
        "/api/v1/earning-rules",
        key="admin_key",
        body={"name": "x", "kind": "multiplier", "value": 1},
        tests=status(422)
        + code("validation_error")
        + """
pm.test("value named", () => pm.expect(pm.response.json().errors).to.have.key("value"));""",
    ),
    request(
        "earning rules (admin)",
        "GET",
        "/api/v1/earning-rules",
        key="admin_key",
        tests=status(200)
        + """
pm.test("the new rule is listed", () => pm.expect(pm.response.json().map(r => r.id)).to.include(pm.collectionVariables.get("earning_rule_id")));""",
    ),
    request(
        "earning rules need admin → 403",
        "GET",
        "/api/v1/earning-rules",
        tests=status(403) + code("forbidden"),
    ),
    request(
        "get an earning rule",
        "GET",
        "/api/v1/earning-rules/{{earning_rule_id}}",
        key="admin_key",
        tests=status(200),
    ),
    request(
        "change an earning rule (a new version)",
        "PATCH",
        "/api/v1/earning-rules/{{earning_rule_id}}",
        key="admin_key",
        body={"value": 1.5, "priority": 10},
        tests=status(200)
        + """
pm.test("version 2, exact value", () => { const r = pm.response.json(); pm.expect(r.version).to.eql(2); pm.expect(r.value).to.eql(1.5); });""",
    ),
    request(
        "an earning rule's versions",
        "GET",
        "/api/v1/earning-rules/{{earning_rule_id}}/versions",
        key="admin_key",
        tests=status(200)
        + """
pm.test("two versions", () => pm.expect(pm.response.json().map(v => v.version)).to.eql([1, 2]));""",
    ),
    request(
        "delete an earning rule",
        "DELETE",
        "/api/v1/earning-rules/{{earning_rule_id}}",
        key="admin_key",
        tests=status(204),
    ),
    request(
        "a deleted earning rule → 404",
        "GET",
        "/api/v1/earning-rules/{{earning_rule_id}}",
        key="admin_key",
        tests=status(404) + code("not_found"),
    ),
    # ---------------------------------------------------------------- rewards and redemptions
    request(
        "add a reward (admin)",
        "POST",
        "/api/v1/rewards",
        key="admin_key",
        body={
            "name": "Free coffee {{run}}",
            "kind": "free_item",
            "sku": "COFFEE",
            "points_cost": 5,
            "stock": 100,
        },
        tests=status(201)
        + """
const r = pm.response.json();
pm.test("a free item with stock", () => { pm.expect(r.kind).to.eql("free_item"); pm.expect(r.stock).to.eql(100); });
pm.collectionVariables.set("reward_id", r.id);""",
    ),
    request(
        "reward with a bad percent → 422",
        "POST",
        "/api/v1/rewards",
        key="admin_key",
        body={"name": "x", "kind": "percent_off", "value": 150, "points_cost": 5},
        tests=status(422)
        + code("validation_error")
        + """
pm.test("value named", () => pm.expect(pm.response.json().errors).to.have.key("value"));""",
    ),
    request("get a reward", "GET", "/api/v1/rewards/{{reward_id}}", tests=status(200)),
    request(
        "what the card can afford (till)",
        "GET",
        "/api/v1/rewards?card_number={{card_number}}&page_size=100",
        tests=status(200)
        + """
const mine = pm.response.json().find(r => r.id === Number(pm.collectionVariables.get("reward_id")));
pm.test("affordable", () => pm.expect(mine.affordable).to.eql(true));""",
    ),
    request(
        "reserve at checkout (webshop)",
        "POST",
        "/api/v1/redemptions",
        key="webshop_key",
        body={
            "card_number": "{{card_number}}",
            "reward_id": "{{reward_id}}",
            "order_ref": "web-{{run}}",
        },
        raw='{"card_number": "{{card_number}}", "reward_id": {{reward_id}}, "order_ref": "web-{{run}}"}',
        tests=status(201)
        + """
const r = pm.response.json();
pm.test("reserved, points held", () => {
  pm.expect(r.status).to.eql("reserved");
  pm.expect(r.balance.held).to.eql(5);
  pm.expect(r.benefit.sku).to.eql("COFFEE");
});
pm.collectionVariables.set("redemption_id", r.id);""",
    ),
    request(
        "confirm after payment (webshop)",
        "POST",
        "/api/v1/redemptions/{{redemption_id}}/confirm",
        key="webshop_key",
        body={},
        tests=status(200)
        + """
pm.test("redeemed, hold gone", () => {
  pm.expect(pm.response.json().status).to.eql("redeemed");
  pm.expect(pm.response.json().balance.held).to.eql(0);
});""",
    ),
    request(
        "cancel a redeemed one → 409",
        "POST",
        "/api/v1/redemptions/{{redemption_id}}/cancel",
        key="webshop_key",
        tests=status(409) + code("redemption_already_redeemed"),
    ),
    request(
        "reserve again (abandoned basket)",
        "POST",
        "/api/v1/redemptions",
        key="webshop_key",
        raw='{"card_number": "{{card_number}}", "reward_id": {{reward_id}}}',
        tests=status(201) + 'pm.collectionVariables.set("redemption_2", pm.response.json().id);',
    ),
    request(
        "cancel on abandonment",
        "POST",
        "/api/v1/redemptions/{{redemption_2}}/cancel",
        key="webshop_key",
        tests=status(200)
        + """
pm.test("released, points available", () => {
  pm.expect(pm.response.json().status).to.eql("released");
  pm.expect(pm.response.json().balance.held).to.eql(0);
});""",
    ),
    request(
        "confirm a released one → 409",
        "POST",
        "/api/v1/redemptions/{{redemption_2}}/confirm",
        key="webshop_key",
        tests=status(409) + code("redemption_not_reserved"),
    ),
    request(
        "get a redemption",
        "GET",
        "/api/v1/redemptions/{{redemption_2}}",
        key="webshop_key",
        tests=status(200)
        + """
pm.test("released", () => pm.expect(pm.response.json().status).to.eql("released"));""",
    ),
    request(
        "another client's redemption → 404",
        "POST",
        "/api/v1/redemptions/{{redemption_2}}/cancel",
        tests=status(404) + PROBLEM + code("not_found"),
    ),
    request(
        "redeem instantly at the till",
        "POST",
        "/api/v1/redemptions",
        raw='{"card_number": "{{card_number}}", "reward_id": {{reward_id}}, "instant": true}',
        tests=status(201)
        + 'pm.test("redeemed", () => pm.expect(pm.response.json().status).to.eql("redeemed"));',
    ),
    request(
        "deactivate the reward (admin)",
        "PATCH",
        "/api/v1/rewards/{{reward_id}}",
        key="admin_key",
        body={"active": False},
        tests=status(200),
    ),
    request(
        "redeem an inactive reward → 422",
        "POST",
        "/api/v1/redemptions",
        raw='{"card_number": "{{card_number}}", "reward_id": {{reward_id}}}',
        tests=status(422) + code("reward_unavailable"),
    ),
    request(
        "redeem more than available → 422",
        "POST",
        "/api/v1/rewards",
        key="admin_key",
        body={"name": "Bike {{run}}", "kind": "free_item", "sku": "BIKE", "points_cost": 1000000},
        tests=status(201) + 'pm.collectionVariables.set("dear_reward", pm.response.json().id);',
    ),
    request(
        "not enough points → 422",
        "POST",
        "/api/v1/redemptions",
        raw='{"card_number": "{{card_number}}", "reward_id": {{dear_reward}}}',
        tests=status(422) + code("insufficient_points"),
    ),
    # ---------------------------------------------------------------- vouchers
    request(
        "goodwill voucher (admin)",
        "POST",
        "/api/v1/members/{{member_id}}/vouchers",
        key="admin_key",
        body={
            "kind": "amount",
            "value": 500,
            "valid_days": 30,
            "reason": "late delivery",
            "min_spend": 1000,
        },
        tests=status(201)
        + """
const v = pm.response.json();
pm.test("a readable code", () => pm.expect(v.code).to.match(/^[A-HJKMNP-Z2-9]{4}-[A-HJKMNP-Z2-9]{4}-[A-HJKMNP-Z2-9]{2}$/));
pm.test("goodwill, active", () => { pm.expect(v.kind).to.eql("goodwill"); pm.expect(v.status).to.eql("active"); });
pm.collectionVariables.set("voucher_code", v.code);""",
    ),
    request(
        "member's vouchers",
        "GET",
        "/api/v1/members/{{member_id}}/vouchers",
        tests=status(200)
        + """
pm.test("listed", () => pm.expect(pm.response.json().map(v => v.code)).to.include(pm.collectionVariables.get("voucher_code")));""",
    ),
    request(
        "does it apply to this basket (checkout)",
        "GET",
        "/api/v1/vouchers/{{voucher_code}}?amount=2500",
        key="webshop_key",
        tests=status(200)
        + """
pm.test("applies: 5.00 off", () => {
  pm.expect(pm.response.json().applicable).to.eql(true);
  pm.expect(pm.response.json().discount).to.eql(500);
});""",
    ),
    request(
        "redeem below the minimum spend → 422",
        "POST",
        "/api/v1/vouchers/{{voucher_code}}/redeem",
        key="webshop_key",
        body={"order_ref": "web-{{run}}", "amount": 999, "currency": "{{currency}}"},
        tests=status(422) + PROBLEM + code("below_min_spend"),
    ),
    request(
        "redeem (webshop)",
        "POST",
        "/api/v1/vouchers/{{voucher_code}}/redeem",
        key="webshop_key",
        body={"order_ref": "web-{{run}}", "amount": 2500, "currency": "{{currency}}"},
        tests=status(200)
        + """
pm.test("the discount", () => { pm.expect(pm.response.json().discount).to.eql(500); pm.expect(pm.response.json().amount_after).to.eql(2000); });""",
    ),
    request(
        "redeem again → 422",
        "POST",
        "/api/v1/vouchers/{{voucher_code}}/redeem",
        key="webshop_key",
        body={"order_ref": "web-{{run}}-2", "amount": 2500, "currency": "{{currency}}"},
        tests=status(422) + code("voucher_used"),
    ),
    request(
        "unknown voucher → 404",
        "GET",
        "/api/v1/vouchers/ABCD-EFGH-JK",
        tests=status(404) + code("not_found"),
    ),
    request(
        "win-back dry run (admin)",
        "POST",
        "/api/v1/campaigns/win-back",
        key="admin_key",
        body={
            "inactive_days": 90,
            "kind": "percent",
            "value": 10,
            "valid_days": 30,
            "holdout_percent": 20,
            "dry_run": True,
        },
        tests=status(200)
        + """
const r = pm.response.json();
pm.test("counts only", () => { pm.expect(r.dry_run).to.eql(true); pm.expect(r.issued + r.holdout).to.eql(r.eligible); });""",
    ),
    request(
        "win-back campaign → 202, run by a job (admin)",
        "POST",
        "/api/v1/campaigns/win-back",
        key="admin_key",
        body={
            "inactive_days": 3650,
            "kind": "amount",
            "value": 300,
            "valid_days": 30,
            "campaign": "postman-{{run}}",
        },
        tests=status(202)
        + """
const c = pm.response.json();
pm.test("pending, with a Location", () => {
  pm.expect(c.status).to.eql("pending");
  pm.expect(c.campaign).to.eql("postman-" + pm.collectionVariables.get("run"));
  pm.expect(pm.response.headers.get("Location")).to.eql("/api/v1/campaigns/" + c.id);
});
pm.collectionVariables.set("campaign_id", c.id);""",
    ),
    request(
        "the campaign: status and counts so far (admin)",
        "GET",
        "/api/v1/campaigns/{{campaign_id}}",
        key="admin_key",
        tests=status(200)
        + """
const c = pm.response.json();
pm.test("a known status; counts add up", () => {
  pm.expect(["pending", "running", "done", "failed"]).to.include(c.status);
  pm.expect(c.issued + c.holdout).to.eql(c.eligible);
});""",
    ),
    # ---------------------------------------------------------------- Stripe
    request(
        "Stripe webhook with a forged signature → 400",
        "POST",
        "/api/v1/stripe/webhook",
        key=None,
        raw='{"id": "evt_forged", "type": "payment_intent.succeeded", "data": {"object": {}}}',
        headers={
            "Stripe-Signature": "t=1700000000,v1=0000000000000000000000000000000000000000000000000000000000000000"
        },
        tests=status(400) + PROBLEM + code("invalid_signature"),
    ),
    request(
        "void a voucher (admin)",
        "POST",
        "/api/v1/members/{{member_id}}/vouchers",
        key="admin_key",
        body={"kind": "percent", "value": 10, "valid_days": 30, "reason": "issued by mistake"},
        tests=status(201) + 'pm.collectionVariables.set("voucher_2", pm.response.json().code);',
    ),
    request(
        "void it",
        "POST",
        "/api/v1/vouchers/{{voucher_2}}/void",
        key="admin_key",
        body={"reason": "issued by mistake"},
        tests=status(200)
        + 'pm.test("void", () => pm.expect(pm.response.json().status).to.eql("void"));',
    ),
    # ---------------------------------------------------------------- metrics
    request(
        "retention metrics (reports)",
        "GET",
        "/api/v1/metrics/retention?start=2026-01-01&end=2026-12-31",
        key="reports_key",
        tests=status(200)
        + """
const m = pm.response.json();
pm.test("the figures of metrics.md", () => pm.expect(m).to.include.keys("customers_at_start", "active_customers",
  "new_customers", "retained_customers", "lost_customers", "reactivated_customers", "purchases", "revenue",
  "returned_amount", "repeat_customers", "one_time_customers", "retention_rate", "churn_rate",
  "repeat_customer_rate", "purchase_frequency", "average_order_value", "customer_lifetime_value"));
pm.test("reactivated = active - new - retained", () =>
  pm.expect(m.reactivated_customers).to.eql(m.active_customers - m.new_customers - m.retained_customers));""",
    ),
    request(
        "retention with end before start → 422",
        "GET",
        "/api/v1/metrics/retention?start=2026-02-01&end=2026-01-01",
        key="reports_key",
        tests=status(422) + code("validation_error"),
    ),
    request(
        "the feedback link as a QR code (SVG) for the receipt",
        "GET",
        "/api/v1/purchases/{{purchase_id}}/feedback-qr",
        tests=status(200)
        + """
pm.test("an SVG image", () => pm.expect(pm.response.headers.get("Content-Type")).to.include("image/svg+xml"));
pm.test("a QR code of the feedback page", () => {
  pm.expect(pm.response.text()).to.match(/^<svg[^>]*>/);
  pm.expect(pm.response.text()).to.include("/f/" + pm.collectionVariables.get("feedback_token"));
});""",
    ),
    request(
        "no QR code for a purchase nobody made → 404",
        "GET",
        "/api/v1/purchases/999999999/feedback-qr",
        tests=status(404) + code("not_found") + PROBLEM,
    ),
    request(
        "feedback from the receipt link (no key)",
        "POST",
        "/api/v1/feedback/{{feedback_token}}",
        key=None,
        body={"nps": 9, "ces": 2, "comment": "Quick and friendly"},
        tests=status(201)
        + """
pm.test("about the purchase", () => pm.expect(pm.response.json().purchase_id).to.eql(Number(pm.collectionVariables.get("purchase_id"))));""",
    ),
    request(
        "feedback link used twice → 409",
        "POST",
        "/api/v1/feedback/{{feedback_token}}",
        key=None,
        body={"nps": 0},
        tests=status(409) + code("feedback_exists"),
    ),
    request(
        "feedback link tampered → 404",
        "POST",
        "/api/v1/feedback/MQ.not-a-signature",
        key=None,
        body={"nps": 0},
        tests=status(404) + code("not_found"),
    ),
    request(
        "feedback from the till",
        "POST",
        "/api/v1/feedback",
        body={"card_number": "{{card_number}}", "csat": 5},
        headers={"Idempotency-Key": "feedback-{{run}}-1"},
        tests=status(201)
        + 'pm.test("channel api", () => pm.expect(pm.response.json().channel).to.eql("api"));',
    ),
    request(
        "feedback with an NPS of 11 → 422",
        "POST",
        "/api/v1/feedback",
        body={"card_number": "{{card_number}}", "nps": 11},
        tests=status(422)
        + code("validation_error")
        + 'pm.test("names nps", () => pm.expect(pm.response.json().errors).to.have.property("nps"));',
    ),
    request(
        "feedback metrics (reports)",
        "GET",
        "/api/v1/metrics/feedback?start=2026-01-01&end=2030-12-31",
        key="reports_key",
        tests=status(200)
        + """
const f = pm.response.json();
pm.test("NPS, CES, CSAT and the counts", () => pm.expect(f).to.include.keys("nps", "ces_average", "csat", "responses"));
pm.test("at least our two", () => pm.expect(f.responses.total).to.be.at.least(2));""",
    ),
    request(
        "segments (reports)",
        "GET",
        "/api/v1/metrics/segments?as_of=2030-12-31",
        key="reports_key",
        tests=status(200)
        + """
const s = pm.response.json();
pm.test("every segment", () => pm.expect(s.segments).to.have.all.keys("lost", "at_risk", "new", "ambassador", "deal_seeker", "loyal", "occasional"));
pm.test("they add up", () => pm.expect(Object.values(s.segments).reduce((a, b) => a + b, 0)).to.eql(s.members));""",
    ),
    request(
        "segments without as_of → 422",
        "GET",
        "/api/v1/metrics/segments",
        key="reports_key",
        tests=status(422)
        + 'pm.test("names as_of", () => pm.expect(pm.response.json().errors).to.have.property("as_of"));',
    ),
    request(
        "voucher metrics (reports)",
        "GET",
        "/api/v1/metrics/vouchers?start=2026-01-01&end=2030-12-31",
        key="reports_key",
        tests=status(200)
        + """
const kinds = pm.response.json().kinds.map(k => k.kind);
pm.test("every kind", () => pm.expect(kinds).to.eql(["come_back", "welcome", "win_back", "goodwill"]));""",
    ),
    request(
        "cohort matrix (reports)",
        "GET",
        "/api/v1/metrics/cohorts?start=2026-01-01&end=2026-12-31",
        key="reports_key",
        tests=status(200)
        + """
pm.test("each cohort starts at 1.0", () => pm.response.json().cohorts.forEach(c => pm.expect(c.retention[0]).to.eql(1.0)));""",
    ),
    request(
        "points metrics: the liability (reports)",
        "GET",
        "/api/v1/metrics/points?start=2026-01-01&end=2030-12-31",
        key="reports_key",
        tests=status(200)
        + """
const m = pm.response.json();
pm.test("the figures of metrics.md", () => pm.expect(m).to.include.keys("issued", "redeemed",
  "expired", "reversed", "adjusted", "outstanding_at_start", "outstanding", "value_per_point",
  "outstanding_value", "months"));
pm.test("the months add up", () => pm.expect(m.months.reduce((s, x) => s + x.issued, 0)).to.eql(m.issued));""",
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
        "search by e-mail in the body (admin)",
        "POST",
        "/api/v1/members/search",
        key="admin_key",
        body={"email": "ANN.{{run}}@example.com"},
        tests=status(200)
        + """
pm.test("the member, with a total", () => {
  pm.expect(pm.response.json().map(m => m.id)).to.eql([Number(pm.collectionVariables.get("member_id"))]);
  pm.expect(pm.response.headers.get("X-Total-Count")).to.eql("1");
});""",
    ),
    request(
        "export everything about the member (admin)",
        "GET",
        "/api/v1/members/{{member_id}}/export",
        key="admin_key",
        tests=status(200)
        + """
pm.test("the member and their records", () => {
  const e = pm.response.json();
  pm.expect(e.member.id).to.eql(Number(pm.collectionVariables.get("member_id")));
  pm.expect(e.cards.length).to.be.above(0);
  ["ledger", "purchases", "returns", "vouchers", "redemptions", "feedback", "audit_entries"]
    .forEach(k => pm.expect(e[k]).to.be.an("array"));
});
pm.test("a request id", () => pm.expect(pm.response.headers.get("X-Request-Id")).to.match(/^[0-9a-f]{32}$/));""",
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
        "erased member keeps the balance, the card is blocked",
        "GET",
        "/api/v1/members/{{member_id}}",
        key="admin_key",
        tests=status(200)
        + """
pm.test("personal data gone", () => {
  const m = pm.response.json();
  pm.expect([m.name, m.email, m.phone]).to.eql([null, null, null]);
  pm.expect(m.erased_at).to.be.a("string");
  pm.expect(m.card_number).to.eql(null);
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
