"""Every operation of the OpenAPI document × every kind of caller: no key, a revoked key, an
expired key, and a live key of each scope.

No key, a revoked or an expired key: 401 `unauthorized` everywhere a key is needed. A key of a
scope the operation does not name (its description's "Scopes: …", `admin` always allowed):
403 `forbidden`. A key of a named scope gets past the check: whatever the answer (404 for an
unknown id, 422 for an empty body, 2xx), it is neither 401 nor 403. The requests carry ids no
row has and empty bodies, so nothing they reach changes anything another row depends on.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from loyalty.domain.cards import luhn_check_digit
from loyalty.models import SCOPES
from loyalty.models.types import utcnow

#: operations that take no key, by design (the receipt's feedback link, Stripe's webhook)
OPEN = {
    ("post", "/api/v1/feedback/{token}"),
    ("post", "/api/v1/stripe/webhook"),
}
#: fewer operations than this means the walk lost its way (the document had 50 when written)
MIN_OPERATIONS = 45

_SCOPES_NOTE = re.compile(r"Scopes: ([a-z, ]+?)(?: \(or admin\))?$", re.MULTILINE)
_CARD = "990000000000000" + luhn_check_digit("990000000000000")


def _operations(client: Any) -> list[tuple[str, str, dict[str, Any]]]:
    spec = client.get("/api/v1/openapi.json").json
    return [
        (method, path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]


def _documented_scopes(op: dict[str, Any]) -> set[str]:
    found = _SCOPES_NOTE.search(op.get("description", ""))
    assert found, op.get("description")
    return {s.strip() for s in found.group(1).split(",")} | {"admin"}


def _url(path: str) -> str:
    """The path with each parameter filled in: ids no row has, a valid card number nobody holds,
    a voucher code nobody was given."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "card_number":
            return _CARD
        if name == "code":
            return "ZZZZZZZZZZ"
        return "999999" if name.endswith("id") else "x"

    return re.sub(r"\{(\w+)\}", value, path)


def _call(client: Any, method: str, path: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in ("post", "put", "patch"):
        kwargs["json"] = {}
    return client.open(_url(path), method=method.upper(), **kwargs)


@pytest.fixture
def callers(api_key: Any) -> dict[str, dict[str, str]]:
    """Headers for each kind of caller."""
    past = utcnow() - timedelta(seconds=1)
    return {
        "no key": {},
        "revoked key": api_key("admin", revoked_at=past),
        "expired key": api_key("admin", expires_at=past),
        **{scope: api_key(scope) for scope in SCOPES},
    }


def test_the_matrix_covers_every_operation_and_only_two_go_without_a_key(client) -> None:
    ops = _operations(client)
    assert len(ops) >= MIN_OPERATIONS
    keyless = {(m, p) for m, p, op in ops if not op.get("security")}
    assert keyless == OPEN
    for method, path, op in ops:
        if (method, path) not in OPEN:
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            assert _documented_scopes(op) <= set(SCOPES), (method, path)


@pytest.mark.parametrize("caller", ["no key", "revoked key", "expired key"])
def test_no_revoked_or_expired_key_is_401_everywhere(client, callers, caller) -> None:
    wrong = []
    for method, path, _op in _operations(client):
        if (method, path) in OPEN:
            continue
        r = _call(client, method, path, callers[caller])
        if r.status_code != 401 or r.json["code"] != "unauthorized":
            wrong.append((method, path, r.status_code))
        elif "Bearer" not in r.headers.get("WWW-Authenticate", ""):
            wrong.append((method, path, "no WWW-Authenticate"))
    assert wrong == []


@pytest.mark.parametrize("scope", SCOPES)
def test_each_scope_is_refused_exactly_where_the_document_says(client, callers, scope) -> None:
    wrong = []
    allowed_count = refused_count = 0
    for method, path, op in _operations(client):
        if (method, path) in OPEN:
            continue
        r = _call(client, method, path, callers[scope])
        if scope in _documented_scopes(op):
            allowed_count += 1
            if r.status_code in (401, 403):
                wrong.append((method, path, r.status_code, r.json.get("code")))
        else:
            refused_count += 1
            if r.status_code != 403 or r.json["code"] != "forbidden":
                wrong.append((method, path, r.status_code))
    assert wrong == []
    # admin may do everything; every other scope is refused somewhere
    assert refused_count == 0 if scope == "admin" else refused_count > 0
    assert allowed_count > 0
