"""Never a 500 for what a client sends, checked by class over the whole OpenAPI document.

- JSON bodies are read in one place (`loyalty/api/body.py`) for every endpoint: nesting,
  huge numbers, duplicate keys, NaN, non-UTF-8 and bodies that are not JSON get 400
  `invalid_json`; a body sent as another Content-Type 415 `unsupported_media_type`.
- Every integer a request can carry has a documented minimum and maximum.
- Dates and times a programme holds are bounded (LOYALTY_MIN_DATE..LOYALTY_MAX_DATE) for
  purchases, returns, reward windows and the metrics' queries.
- Every query and path parameter of the document works with a valid value (a strict integer
  field reading a query string refused every `?member_id=3`).
- A fuzz pass posts arbitrary bytes, malformed JSON and odd content types to every
  POST/PUT/PATCH operation: never a 5xx, every error problem+json.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.api.body import MAX_DEPTH
from loyalty.config import Config
from loyalty.schemas.common import MAX_INT_DIGITS

PROBLEM = "application/problem+json"
BODY_METHODS = ("post", "put", "patch")


def assert_problem(r: Any, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert r.headers["Content-Type"] == PROBLEM
    body = r.json
    assert body["status"] == status and body["code"] == code, body
    return body


@pytest.fixture
def spec(client: Any) -> dict:
    return client.get("/api/v1/openapi.json").json


@pytest.fixture
def member(client: Any, admin: dict) -> dict:
    return client.post("/api/v1/members", json={"name": "Ann"}, headers=admin).json


def operations(spec: dict, methods: tuple[str, ...]) -> list[tuple[str, str, dict]]:
    """(method, path, operation) of the document; each operation's `parameters` include those
    of its path (path parameters are documented there)."""
    return [
        (method, path, {**op, "parameters": item.get("parameters", []) + op.get("parameters", [])})
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in methods
    ]


def fill_path(path: str, values: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), 1)), path)


# -- JSON bodies, read once for every endpoint ------------------------------------------------


def deep(n: int) -> str:
    return '{"name": ' + "[" * n + "]" * n + "}"


UNREADABLE_BODIES = {
    "nested a thousand deep (arrays)": "[" * 1000 + "]" * 1000,
    "nested a thousand deep (objects)": '{"a": ' * 1000 + "1" + "}" * 1000,
    "nested one level too deep": deep(MAX_DEPTH),
    "an integer of thousands of digits": '{"amount": ' + "9" * 5000 + "}",
    "a negative integer of thousands of digits": '{"amount": -' + "9" * 5000 + "}",
    "an integer one digit too long": '{"amount": ' + "9" * (MAX_INT_DIGITS + 1) + "}",
    "a float too large": '{"amount": 1e999}',
    "NaN": '{"amount": NaN}',
    "Infinity": '{"amount": -Infinity}',
    "a duplicate key": '{"external_id": "a", "external_id": "b"}',
    "a duplicate key deeper down": '{"lines": [{"sku": "A", "sku": "B"}]}',
    "not JSON": '{"name": ',
    "a byte order mark": '\ufeff{"name": "Ann"}',
}


@pytest.mark.parametrize("body", UNREADABLE_BODIES.values(), ids=UNREADABLE_BODIES.keys())
def test_a_body_we_cannot_read_faithfully_is_400_invalid_json(client, admin, body) -> None:
    r = client.post("/api/v1/purchases", data=body, content_type="application/json", headers=admin)
    problem = assert_problem(r, 400, "invalid_json")
    assert list(problem["errors"]) == ["_body"] and problem["detail"]


def test_the_json_reader_names_what_it_refuses(client, admin) -> None:
    def refusal(body: str | bytes) -> str:
        r = client.post(
            "/api/v1/members", data=body, content_type="application/json", headers=admin
        )
        return assert_problem(r, 400, "invalid_json")["errors"]["_body"][0]

    assert "email" in refusal('{"email": "a@example.com", "email": "b@example.com"}')
    assert f"{MAX_DEPTH} levels" in refusal("[" * 1000 + "]" * 1000)
    assert f"{MAX_INT_DIGITS} digits" in refusal('{"name": ' + "1" * 5000 + "}")
    assert "UTF-8" in refusal(b'{"name": "\xff"}')
    assert "UTF-8" in refusal('{"name": "Ann"}'.encode("utf-16"))


def test_a_deep_body_with_an_idempotency_key_is_400_too(client, admin) -> None:
    """The key's request fingerprint reads the body before the parser does."""
    headers = {**admin, "Idempotency-Key": "deep-1"}
    body = "[" * 5000 + "]" * 5000
    r = client.post("/api/v1/members", data=body, content_type="application/json", headers=headers)
    assert_problem(r, 400, "invalid_json")


def test_what_the_reader_takes_reaches_the_schema(client, admin, member) -> None:
    """At the depth limit and one digit under the number limit the body is read, and the
    fields' own rules answer, naming the field."""
    r = client.post(
        "/api/v1/members", data=deep(MAX_DEPTH - 2), content_type="application/json", headers=admin
    )
    assert list(assert_problem(r, 422, "validation_error")["errors"]) == ["name"]
    r = client.post(
        f"/api/v1/members/{member['id']}/adjustments",
        data='{"points": ' + "9" * MAX_INT_DIGITS + ', "reason": "typo"}',
        content_type="application/json",
        headers=admin,
    )
    assert list(assert_problem(r, 422, "validation_error")["errors"]) == ["points"]
    assert member["balance"]["points"] == 0
    assert client.get(f"/api/v1/members/{member['id']}", headers=admin).json["balance"] == {
        "points": 0,
        "held": 0,
        "pending": 0,
        "available": 0,
    }


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"],
)
def test_a_json_body_sent_as_another_type_is_415_saying_what_to_send(
    client, admin, member, content_type
) -> None:
    sale = {
        "external_id": "s-1",
        "member_id": member["id"],
        "amount": 1000,
        "currency": "EUR",
    }
    r = client.post(
        "/api/v1/purchases", data=json.dumps(sale), content_type=content_type, headers=admin
    )
    problem = assert_problem(r, 415, "unsupported_media_type")
    assert "application/json" in problem["detail"]
    assert list(problem["errors"]) == ["Content-Type"]  # not "missing" on every field
    r = client.post("/api/v1/purchases", json=sale, headers=admin)
    assert r.status_code == 201 and r.json["points_earned"] == 10


def test_json_with_a_charset_or_a_json_subtype_is_read(client, admin) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        r = client.post(
            "/api/v1/members", data='{"name": "Bo"}', content_type=content_type, headers=admin
        )
        assert r.status_code == 201 and r.json["name"] == "Bo", (content_type, r.json)


def test_no_body_is_no_body_whatever_the_type(client, admin, member) -> None:
    r = client.post("/api/v1/members", data="", content_type="text/plain", headers=admin)
    assert r.status_code == 201 and r.json["name"] is None
    r = client.post("/api/v1/purchases", data="", content_type="application/json", headers=admin)
    problem = assert_problem(r, 422, "validation_error")
    assert {"external_id", "amount", "currency"} <= set(problem["errors"])


def test_every_body_of_the_document_is_read_by_the_strict_reader(client, admin, spec) -> None:
    """Each operation that takes a JSON body refuses the same unreadable bodies: the reader
    sits where every body is parsed, not in a view."""
    ops = [(m, p) for m, p, op in operations(spec, BODY_METHODS) if "requestBody" in op]
    assert len(ops) >= 20
    failures = []
    for method, path in ops:
        url = fill_path(path, {})
        for body, content_type, expected in [
            ('{"a": 1, "a": 2}', "application/json", (400, "invalid_json")),
            ("[" * 1000 + "]" * 1000, "application/json", (400, "invalid_json")),
            ('{"a": ' + "7" * 4400 + "}", "application/json", (400, "invalid_json")),
            ("{}", "text/plain", (415, "unsupported_media_type")),
        ]:
            r = client.open(url, method=method, data=body, content_type=content_type, headers=admin)
            got = (r.status_code, (r.json or {}).get("code"))
            if got != expected or r.headers["Content-Type"] != PROBLEM:
                failures.append((method, path, body[:12], got))
    assert failures == []


# -- integers ----------------------------------------------------------------------------------


def _schemas_of(spec: dict, schema: dict, seen: set[str]) -> list[tuple[str, dict]]:
    """(path, schema) of every property reachable from `schema` (references resolved once)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        seen.add(name)
        schema = spec["components"]["schemas"][name]
    found = [("", schema)]
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            found += _schemas_of(spec, sub, seen)
    for name, sub in schema.get("properties", {}).items():
        found += [(f"{name}.{p}".rstrip("."), s) for p, s in _schemas_of(spec, sub, seen)]
    if "items" in schema:
        found += [(f"[].{p}".rstrip("."), s) for p, s in _schemas_of(spec, schema["items"], seen)]
    return found


def test_every_integer_a_request_can_carry_is_bounded_in_the_document(spec) -> None:
    """Minimum and maximum come from the schema's own Range (no second copy of a number);
    `page` is flask-smorest's and needs none: a page past the end is an empty list."""
    unbounded = []
    for method, path, op in operations(spec, ("get", *BODY_METHODS, "delete")):
        found = [(p["name"], p["schema"]) for p in op.get("parameters", []) if p["name"] != "page"]
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            found += _schemas_of(spec, body["schema"], set())
        unbounded += [
            (method, path, name)
            for name, schema in found
            if schema.get("type") == "integer" and not {"minimum", "maximum"} <= set(schema)
        ]
    assert unbounded == []


# -- dates -------------------------------------------------------------------------------------

OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+05:00",  # year 1 with a positive offset: before year 1 in UTC
    "0001-01-01T12:00:00+00:00",
    "1999-12-31T23:59:59+00:00",
    "2000-01-01T00:30:00+01:00",  # 1999-12-31 in UTC
    "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
]


@pytest.mark.parametrize("occurred_at", OUT_OF_RANGE_TIMES)
def test_a_purchase_or_return_outside_the_programmes_dates_is_422(
    client, admin, member, occurred_at
) -> None:
    sale = {"external_id": "s-1", "member_id": member["id"], "amount": 1000, "currency": "EUR"}
    r = client.post("/api/v1/purchases", json={**sale, "occurred_at": occurred_at}, headers=admin)
    problem = assert_problem(r, 422, "validation_error")
    assert problem["errors"] == {"occurred_at": ["Must be from 2000-01-01 to 2100-12-31 (UTC)."]}

    purchase = client.post("/api/v1/purchases", json=sale, headers=admin).json
    r = client.post(
        f"/api/v1/purchases/{purchase['id']}/returns",
        json={"external_id": "r-1", "amount": 100, "occurred_at": occurred_at},
        headers=admin,
    )
    assert list(assert_problem(r, 422, "validation_error")["errors"]) == ["occurred_at"]
    detail = client.get(f"/api/v1/purchases/{purchase['id']}", headers=admin).json
    assert detail["returns"] == [] and detail["returned_amount"] == 0


def test_the_first_moment_of_the_range_is_a_purchase_like_any(client, admin, member) -> None:
    sale = {
        "external_id": "s-2000",
        "member_id": member["id"],
        "amount": 1000,
        "currency": "EUR",
        "occurred_at": "2000-01-01T01:00:00+01:00",
    }
    r = client.post("/api/v1/purchases", json=sale, headers=admin)
    assert r.status_code == 201 and r.json["occurred_at"] == "2000-01-01T00:00:00+00:00"


def test_reward_windows_are_bounded_too(client, admin) -> None:
    reward = {"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 50}
    for field in ("active_from", "active_until"):
        r = client.post(
            "/api/v1/rewards", json={**reward, field: "0001-01-01T00:00:00+05:00"}, headers=admin
        )
        assert list(assert_problem(r, 422, "validation_error")["errors"]) == [field]


METRICS = [
    ("/api/v1/metrics/retention", ("start", "end")),
    ("/api/v1/metrics/cohorts", ("start", "end")),
    ("/api/v1/metrics/feedback", ("start", "end")),
    ("/api/v1/metrics/vouchers", ("start", "end")),
    ("/api/v1/metrics/segments", ("as_of",)),
]


@pytest.mark.parametrize(("path", "names"), METRICS)
@pytest.mark.parametrize(
    "day", ["0001-01-01", "0001-01-02", "1999-12-31", "2101-01-01", "9999-12-30", "9999-12-31"]
)
def test_metrics_at_dates_outside_the_programmes_are_422(client, admin, path, names, day) -> None:
    r = client.get(path, query_string=dict.fromkeys(names, day), headers=admin)
    problem = assert_problem(r, 422, "validation_error")
    assert set(problem["errors"]) == set(names)


@pytest.mark.parametrize(("path", "names"), METRICS)
def test_metrics_at_the_edges_of_the_range_answer(client, admin, path, names) -> None:
    for first, last in (("2000-01-01", "2000-01-31"), ("2100-12-01", "2100-12-31")):
        query = {"start": first, "end": last} if "start" in names else {"as_of": first}
        r = client.get(path, query_string=query, headers=admin)
        assert r.status_code == 200, (query, r.json)


def test_the_bounds_are_configurable(app, client, admin, member, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "LOYALTY_MIN_DATE", date(2020, 1, 1))
    sale = {"external_id": "s-1", "member_id": member["id"], "amount": 1000, "currency": "EUR"}
    r = client.post(
        "/api/v1/purchases",
        json={**sale, "occurred_at": "2019-06-01T12:00:00+00:00"},
        headers=admin,
    )
    assert assert_problem(r, 422, "validation_error")["errors"] == {
        "occurred_at": ["Must be from 2020-01-01 to 2100-12-31 (UTC)."]
    }
    r = client.get("/api/v1/metrics/segments?as_of=2019-12-31", headers=admin)
    assert list(assert_problem(r, 422, "validation_error")["errors"]) == ["as_of"]


def test_the_bounds_come_from_the_environment_and_are_checked(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "test")
    config = Config(str(tmp_path))
    bounds = config.LOYALTY_MIN_DATE, config.LOYALTY_MAX_DATE
    assert bounds == (date(2000, 1, 1), date(2100, 12, 31))
    monkeypatch.setenv("LOYALTY_MIN_DATE", "2015-01-01")
    monkeypatch.setenv("LOYALTY_MAX_DATE", "2050-12-31")
    config = Config(str(tmp_path))
    bounds = config.LOYALTY_MIN_DATE, config.LOYALTY_MAX_DATE
    assert bounds == (date(2015, 1, 1), date(2050, 12, 31))
    for first, last in (("2051-01-01", "2050-12-31"), ("0001-01-01", "2050-12-31")):
        monkeypatch.setenv("LOYALTY_MIN_DATE", first)
        monkeypatch.setenv("LOYALTY_MAX_DATE", last)
        with pytest.raises(ValueError, match="LOYALTY_MIN_DATE"):
            Config(str(tmp_path))


def test_the_document_states_the_bounds(spec) -> None:
    create = spec["components"]["schemas"]["PurchaseCreate"]["properties"]["occurred_at"]
    assert "From 2000-01-01 to 2100-12-31" in create["description"]
    params = spec["paths"]["/api/v1/metrics/segments"]["get"]["parameters"]
    as_of = next(p for p in params if p["name"] == "as_of")
    assert "From 2000-01-01 to 2100-12-31" in as_of["description"]


# -- query and path parameters -----------------------------------------------------------------


def valid_text(schema: dict) -> str:
    """A value the parameter's schema allows, as a query string or a path carries it."""
    if schema.get("format") == "date":
        return "2026-01-15"
    if "example" in schema:
        return str(schema["example"])
    if "enum" in schema:
        return str(schema["enum"][0])
    kind = schema.get("type")
    if kind == "integer":
        return str(max(schema.get("minimum", 1), 1))
    if kind == "boolean":
        return "true"
    return "x"


def test_every_parameter_of_the_document_takes_a_valid_value(client, admin, spec) -> None:
    """Each query and path parameter, given a value its schema allows (with the required ones
    beside it), is read: the answer may be 404 (nothing has that id), but never 422 naming
    the parameter, nor a 5xx."""
    failures = []
    for method, path, op in operations(spec, ("get", *BODY_METHODS, "delete")):
        params = [p for p in op.get("parameters", []) if p["in"] in ("query", "path")]
        required = {p["name"]: valid_text(p["schema"]) for p in params if p.get("required")}
        for param in params:
            values = {**required, param["name"]: valid_text(param["schema"])}
            url = fill_path(path, values)
            query = {k: v for k, v in values.items() if f"{{{k}}}" not in path}
            r = client.open(url, method=method, query_string=query, json={}, headers=admin)
            named = r.status_code == 422 and param["name"] in (r.json or {}).get("errors", {})
            if named or r.status_code >= 500:
                failures.append((method, path, param["name"], r.status_code, r.json))
    assert failures == []


def test_the_catalogue_reads_member_id_from_the_query(client, admin, member) -> None:
    r = client.get(f"/api/v1/rewards?member_id={member['id']}", headers=admin)
    assert r.status_code == 200 and r.json == []
    client.post(
        "/api/v1/rewards",
        json={"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 50},
        headers=admin,
    )
    r = client.get(f"/api/v1/rewards?member_id={member['id']}", headers=admin)
    assert r.status_code == 200
    assert [(x["name"], x["affordable"]) for x in r.json] == [("Coffee", False)]


def test_a_voucher_check_reads_its_integers_from_the_query(client, admin, member) -> None:
    goodwill = {"kind": "amount", "value": 500, "valid_days": 30, "reason": "late delivery"}
    code = client.post(
        f"/api/v1/members/{member['id']}/vouchers", json=goodwill, headers=admin
    ).json["code"]
    r = client.get(f"/api/v1/vouchers/{code}?amount=2000&member_id={member['id']}", headers=admin)
    assert r.status_code == 200, r.json
    assert (r.json["applicable"], r.json["discount"]) == (True, 500)


@pytest.mark.parametrize("text", ["3.0", "+3", " 3", "٣", "1_000", "0x3", "true", "9" * 25])
def test_a_query_integer_is_ascii_digits(client, admin, text) -> None:
    r = client.get("/api/v1/rewards", query_string={"member_id": text}, headers=admin)
    assert list(assert_problem(r, 422, "validation_error")["errors"]) == ["member_id"]


# -- the document says what the service takes ---------------------------------------------------


def test_a_nullable_object_is_that_object_or_null(client, admin, spec) -> None:
    """Not "any object, or null" (apispec's stand-in for OpenAPI 3.0)."""
    policy = spec["components"]["schemas"]["ProgramUpdate"]["properties"]["welcome_policy"]
    assert policy["anyOf"] == [
        {"$ref": "#/components/schemas/VoucherPolicy"},
        {"type": "object", "nullable": True, "enum": [None]},
    ]
    r = client.put("/api/v1/program", json={"welcome_policy": {"x": 1}}, headers=admin)
    assert assert_problem(r, 422, "validation_error")["errors"] == {
        "welcome_policy.x": ["Unknown field."],
        "welcome_policy.kind": ["Missing data for required field."],
        "welcome_policy.value": ["Missing data for required field."],
        "welcome_policy.valid_days": ["Missing data for required field."],
    }


def test_the_idempotency_key_pattern_is_what_the_service_takes(client, admin, spec) -> None:
    doc = next(
        p
        for p in spec["paths"]["/api/v1/members"]["post"]["parameters"]
        if p["name"] == "Idempotency-Key"
    )["schema"]
    assert (doc["minLength"], doc["maxLength"]) == (1, 255)
    pattern = re.compile(doc["pattern"])
    # every character a header can carry (Latin-1): the pattern takes exactly the printable ones
    taken = {chr(c) for c in range(256) if pattern.fullmatch(chr(c))}
    assert taken == {chr(c) for c in range(256) if chr(c).isprintable()}
    r = client.post("/api/v1/members", json={}, headers={**admin, "Idempotency-Key": "k\x7f"})
    assert list(assert_problem(r, 422, "validation_error")["errors"]) == ["Idempotency-Key"]


def test_card_numbers_are_documented_as_the_card_number_format(spec) -> None:
    path = spec["paths"]["/api/v1/cards/{card_number}"]["parameters"]
    assert next(p for p in path if p["name"] == "card_number")["schema"]["format"] == "card-number"
    body = spec["components"]["schemas"]["PurchaseCreate"]["properties"]["card_number"]
    assert body["format"] == "card-number"
    pattern = re.compile(body["pattern"])
    assert pattern.fullmatch("9900 0000-0000 0002") and pattern.fullmatch("12345678")
    assert not pattern.fullmatch("1234567") and not pattern.fullmatch("1" * 20)


def test_a_reason_is_measured_as_sent(client, admin, member) -> None:
    """A reason of 600 white-space characters is not a blank reason of none: it is too long,
    as the document's maxLength says."""
    card = member["card_number"]
    for reason in (" " * 600, "\x1d" * 600):
        r = client.post(f"/api/v1/cards/{card}/block", json={"reason": reason}, headers=admin)
        assert list(assert_problem(r, 422, "validation_error")["errors"]) == ["reason"]
    r = client.post(f"/api/v1/cards/{card}/block", json={"reason": ""}, headers=admin)
    assert r.status_code == 200 and r.json["status"] == "blocked"


# -- fuzz: raw bodies to every POST/PUT/PATCH --------------------------------------------------

CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=utf-16",
    "application/problem+json",
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/xml",
    "application/octet-stream",
    "*/*",
    "garbage",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _duplicate_key(t: tuple[str, Any, Any]) -> str:
    key = json.dumps(t[0])
    return f"{{{key}: {json.dumps(t[1])}, {key}: {json.dumps(t[2])}}}"


def _bodies(field_names: list[str]) -> st.SearchStrategy[bytes]:
    """Bytes of every kind: arbitrary, text, JSON documents (with this operation's field
    names, so the schema and the rules behind it are reached), JSON cut short, deep nesting,
    huge numbers, duplicate keys."""
    names = st.sampled_from(field_names) if field_names else st.text(max_size=12)
    objects = st.dictionaries(names, json_values, max_size=6).map(json.dumps)
    documents = objects | json_values.map(json.dumps)
    text = st.one_of(
        documents,
        st.tuples(documents, st.integers(0, 40)).map(lambda d: d[0][: d[1]]),
        st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
        st.tuples(names, st.integers(1, 5000)).map(
            lambda t: json.dumps({t[0]: 0})[:-2] + "9" * t[1] + "}"
        ),
        st.tuples(names, json_values, json_values).map(_duplicate_key),
        st.text(max_size=80),
    )
    return st.one_of(text.map(str.encode), st.binary(max_size=200))


def _field_names(spec: dict, op: dict) -> list[str]:
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if not body:
        return []
    return sorted({p.split(".")[0] for p, _s in _schemas_of(spec, body["schema"], set()) if p})


def _fuzz(client: Any, headers: dict, method: str, url: str, bodies: Any) -> list[tuple]:
    """Post `bodies` with every kind of Content-Type; the answers that are a 5xx or an error
    that is not problem+json."""
    failures: list[tuple] = []

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies, content_type=st.sampled_from(CONTENT_TYPES))
    def post(body: bytes, content_type: str | None) -> None:
        r = client.open(url, method=method, data=body, content_type=content_type, headers=headers)
        not_problem = r.status_code >= 400 and (
            r.headers["Content-Type"] != PROBLEM or r.json["status"] != r.status_code
        )
        if r.status_code >= 500 or not_problem:
            failures.append((method, url, content_type, body[:80], r.status_code, r.data[:200]))

    post()
    return failures


def test_fuzzed_bodies_never_get_a_5xx_and_errors_are_problem_json(
    client, admin, spec, member
) -> None:
    ids = {"member_id": member["id"], "card_number": member["card_number"]}
    ops = operations(spec, BODY_METHODS)
    assert len(ops) >= 20
    failures = []
    for method, path, op in ops:
        bodies = _bodies(_field_names(spec, op))
        failures += _fuzz(client, admin, method, fill_path(path, ids), bodies)
    assert failures == []
