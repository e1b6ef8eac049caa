"""Operations: X-Request-Id on every response, one JSON log line per request, Prometheus
metrics on /metrics (who may read them, what they count, counted after the commit only)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import text

from loyalty import observability
from loyalty.jobs import jobs_of

HEX32 = re.compile(r"[0-9a-f]{32}")
MEMBER_RULE = "/api/v1/members/<id:member_id>"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200, r.data
    assert r.mimetype == "text/plain"
    out = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# --- X-Request-Id ------------------------------------------------------------------------------
def test_request_id_generated_on_every_response_errors_included(client, admin) -> None:
    member = client.post("/api/v1/members", json={"name": "Ann"}, headers=admin)
    answers = [
        member,
        client.get(f"/api/v1/members/{member.json['id']}", headers=admin),
        client.get("/api/v1/members/1"),  # 401
        client.get("/api/v1/members/999999", headers=admin),  # 404 problem
        client.get("/nowhere"),  # 404, no route
        client.post("/api/v1/members", json={"email": "not-an-email"}, headers=admin),  # 422
        client.delete("/healthz"),  # 405
        client.get("/healthz"),
    ]
    assert [r.status_code for r in answers] == [201, 200, 401, 404, 404, 422, 405, 200]
    ids = [r.headers["X-Request-Id"] for r in answers]
    assert all(HEX32.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-123:abc_DEF.9", True),
        (str(uuid.uuid4()), True),
        ("x" * 128, True),
        ("x" * 129, False),  # too long
        ("ann@example.com", False),  # not in the character set: never an e-mail address
        ("+31612345678", False),  # nor a phone number
        ("two words", False),
        ("", False),
    ],
)
def test_request_id_echoed_only_when_sane(client, sent: str, kept: bool) -> None:
    r = client.get("/healthz", headers={"X-Request-Id": sent})
    assert r.status_code == 200
    if kept:
        assert r.headers["X-Request-Id"] == sent
    else:
        assert HEX32.fullmatch(r.headers["X-Request-Id"])


def test_request_id_echoed_on_a_problem_response(client) -> None:
    r = client.get("/api/v1/members/1", headers={"X-Request-Id": "till-7-000042"})
    assert r.status_code == 401
    assert r.headers["X-Request-Id"] == "till-7-000042"


# --- the request log line ----------------------------------------------------------------------
@pytest.fixture
def json_log():
    """The `loyalty.request` logger written through the service's own JSON formatter and
    request-id filter (loyalty.observability.logging_config), into a buffer."""
    config = observability.logging_config("INFO")
    fmt = {k: v for k, v in config["formatters"]["json"].items() if k != "()"}
    assert config["formatters"]["json"]["()"] == "pythonjsonlogger.json.JsonFormatter"
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter(**fmt))
    handler.addFilter(observability.RequestIdFilter())
    logger = logging.getLogger("loyalty.request")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_one_json_line_per_request_with_route_actor_status_duration(
    client, api_key, json_log
) -> None:
    headers = api_key("admin", name="backoffice-7")
    enrolled = client.post("/api/v1/members", json={"name": "Ann"}, headers=headers)
    member_id = enrolled.json["id"]
    read = client.get(
        f"/api/v1/members/{member_id}?x=secret", headers={**headers, "X-Request-Id": "abc-1"}
    )
    missing = client.get("/api/v1/members/424242", headers=headers)
    anonymous = client.get("/nowhere/ann@example.com")
    lines = json_log()
    assert len(lines) == 4, lines
    enrol_line, read_line, missing_line, anonymous_line = lines
    assert read_line["request_id"] == "abc-1" == read.headers["X-Request-Id"]
    assert enrol_line["request_id"] == enrolled.headers["X-Request-Id"]
    assert {
        k: read_line[k] for k in ("level", "logger", "message", "actor", "route", "method")
    } == {
        "level": "INFO",
        "logger": "loyalty.request",
        "message": "request",
        "actor": "backoffice-7",
        "route": MEMBER_RULE,  # the URL rule: neither the id nor the query string
        "method": "GET",
    }
    assert read_line["status"] == 200 and enrol_line["status"] == 201
    assert enrol_line["route"] == "/api/v1/members" and enrol_line["method"] == "POST"
    assert isinstance(read_line["duration_ms"], float | int) and read_line["duration_ms"] >= 0
    assert "timestamp" in read_line
    assert (missing_line["status"], missing_line["route"]) == (404, MEMBER_RULE)
    assert missing.headers["X-Request-Id"] == missing_line["request_id"]
    # no route matched: nothing of the raw path is logged, nor is there a caller
    assert anonymous_line["route"] == "<unmatched>" and anonymous_line["actor"] is None
    assert anonymous_line["status"] == 404 == anonymous.status_code
    text = "\n".join(json.dumps(line) for line in lines)
    assert "secret" not in text and "ann@example.com" not in text and str(424242) not in text


def test_error_logged_inside_a_request_carries_its_request_id(client, admin, monkeypatch) -> None:
    """A record written while a request is handled (the 500's log.exception) carries its id."""
    from loyalty.domain import members

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(members, "get_member", broken)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(observability.RequestIdFilter())
    logging.getLogger("loyalty.api.problems").addHandler(handler)
    try:
        r = client.get("/api/v1/members/1", headers={**admin, "X-Request-Id": "crash-1"})
    finally:
        logging.getLogger("loyalty.api.problems").removeHandler(handler)
    assert r.status_code == 500 and r.json["code"] == "internal_error"
    assert r.headers["X-Request-Id"] == "crash-1"
    assert [rec.request_id for rec in records] == ["crash-1"]  # type: ignore[attr-defined]


# --- /metrics: who may read it -----------------------------------------------------------------
def test_metrics_need_no_key_from_an_allowed_address(client) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert "loyalty_http_requests_total" in r.get_data(as_text=True)
    assert r.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("environ", "headers"),
    [
        ({"REMOTE_ADDR": "10.1.2.3"}, {}),  # not in LOYALTY_METRICS_ALLOW (loopback by default)
        ({"REMOTE_ADDR": "192.168.0.5"}, {}),
        ({}, {"X-Forwarded-For": "203.0.113.9"}),  # came through a proxy on this host
        ({}, {"Forwarded": "for=203.0.113.9"}),
    ],
)
def test_metrics_are_a_404_to_anyone_else(client, environ, headers) -> None:
    r = client.get("/metrics", environ_base=environ, headers=headers)
    assert r.status_code == 404
    assert r.json["code"] == "not_found"
    assert b"loyalty_http" not in r.data


def test_metrics_allow_list_is_configuration(app) -> None:
    allowed = app.extensions["loyalty_metrics_allow"]
    try:
        app.extensions["loyalty_metrics_allow"] = observability.parse_networks("10.0.0.0/8")
        c = app.test_client()
        assert c.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.8.7"}).status_code == 200
        assert c.get("/metrics").status_code == 404  # loopback is no longer in the list
        app.extensions["loyalty_metrics_allow"] = observability.parse_networks("")
        assert c.get("/metrics").status_code == 404  # empty: nobody
    finally:
        app.extensions["loyalty_metrics_allow"] = allowed
    assert observability.parse_networks(" 127.0.0.1/32, ::1/128 ") == allowed
    with pytest.raises(ValueError, match="LOYALTY_METRICS_ALLOW"):
        observability.parse_networks("10.0.0.0/33")


# --- /metrics: what it counts ------------------------------------------------------------------
def test_requests_counted_by_route_method_and_status(client, admin) -> None:
    member_id = client.post("/api/v1/members", json={}, headers=admin).json["id"]
    before = scrape(client)
    ok = (("method", "GET"), ("route", MEMBER_RULE), ("status", "200"))
    missing = (("method", "GET"), ("route", MEMBER_RULE), ("status", "404"))
    for _ in range(3):
        assert client.get(f"/api/v1/members/{member_id}", headers=admin).status_code == 200
    assert client.get("/api/v1/members/777777", headers=admin).status_code == 404
    assert client.get("/api/v1/members/888888", headers=admin).status_code == 404
    after = scrape(client)
    name = "loyalty_http_requests_total"
    assert after[(name, ok)] - before.get((name, ok), 0) == 3
    assert after[(name, missing)] - before.get((name, missing), 0) == 2
    hist = "loyalty_http_request_duration_seconds_count"
    by_route = (("method", "GET"), ("route", MEMBER_RULE))
    assert after[(hist, by_route)] - before.get((hist, by_route), 0) == 5
    # one series per URL rule: the ids requested make no labels of their own
    assert not [k for k in after if any("777777" in v or "888888" in v for _n, v in k[1])]


def test_unmatched_paths_share_one_label(client) -> None:
    labels = {"route": "<unmatched>", "method": "GET", "status": "404"}
    before = sample("loyalty_http_requests_total", **labels)
    for i in range(4):
        assert client.get(f"/no/such/path/{i}").status_code == 404
    assert sample("loyalty_http_requests_total", **labels) - before == 4


def _business() -> dict[str, float]:
    return {
        name: sample(f"loyalty_{name}_total")
        for name in ("purchases_recorded", "points_issued", "points_redeemed", "points_expired")
    }


def test_purchases_and_points_counted_once_after_commit(client, admin, pos) -> None:
    member = client.post("/api/v1/members", json={}, headers=pos).json
    before = _business()
    sale = {"external_id": "obs-1", "amount": 2500, "currency": "EUR", "member_id": member["id"]}
    first = client.post("/api/v1/purchases", json=sale, headers={**pos, "Idempotency-Key": "k1"})
    assert first.status_code == 201, first.json
    earned = first.json["points_earned"]
    assert earned > 0
    after_first = _business()
    assert after_first["purchases_recorded"] - before["purchases_recorded"] == 1
    assert after_first["points_issued"] - before["points_issued"] == earned
    # a replay, a repeat of the external_id and a refused purchase count nothing
    replay = client.post("/api/v1/purchases", json=sale, headers={**pos, "Idempotency-Key": "k1"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert client.post("/api/v1/purchases", json=sale, headers=pos).status_code == 200
    refused = client.post(
        "/api/v1/purchases", json={**sale, "external_id": "obs-2", "currency": "USD"}, headers=pos
    )
    assert refused.status_code == 422
    assert _business() == after_first


def test_points_redeemed_counted(client, admin, pos) -> None:
    member = client.post("/api/v1/members", json={}, headers=pos).json
    seeded = client.post(
        f"/api/v1/members/{member['id']}/adjustments",
        json={"points": 500, "reason": "seed"},
        headers=admin,
    )
    assert seeded.status_code == 201
    body = {"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 200}
    reward = client.post("/api/v1/rewards", json=body, headers=admin).json
    before = _business()
    body = {"member_id": member["id"], "reward_id": reward["id"]}
    reserved = client.post("/api/v1/redemptions", json=body, headers=pos).json
    assert reserved["status"] == "reserved"
    assert _business() == before  # a reservation holds points; nothing is spent yet
    r = client.post(f"/api/v1/redemptions/{reserved['id']}/confirm", json={}, headers=pos)
    assert r.status_code == 200 and r.json["status"] == "redeemed", r.json
    after = _business()
    assert after["points_redeemed"] - before["points_redeemed"] == 200
    assert after["points_issued"] == before["points_issued"]  # an adjustment is not an earning


def test_a_bulk_import_counts_its_purchases_and_points_once(app, runner, tmp_path) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        "customer_ref,external_id,occurred_at,amount,currency\n"
        "obs-a,imp-1,2026-01-05,29.99,EUR\nobs-b,imp-2,2026-01-06,10,EUR\n"
        "obs-b,imp-3,2026-01-07,0.5,EUR\n",
        encoding="utf-8",
    )
    before = _business()
    out = runner.invoke(args=["loyalty", "import-purchases", str(history)])
    assert out.exit_code == 0, out.output
    after = _business()
    assert after["purchases_recorded"] - before["purchases_recorded"] == 3
    assert after["points_issued"] - before["points_issued"] == 29 + 10 + 0
    # a second run of the same file writes nothing, and counts nothing
    assert runner.invoke(args=["loyalty", "import-purchases", str(history)]).exit_code == 0
    assert _business() == after


def test_rolled_back_transaction_counts_nothing(app) -> None:
    from loyalty.domain import tally
    from loyalty.extensions import db

    before = _business()
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # a transaction, as a domain function has one
        tally.note(db.session(), tally.PURCHASES_RECORDED)
        tally.note_entry(db.session(), "earn", 40)
        db.session.rollback()
        db.session.commit()  # a later commit does not count what the rollback dropped
        tally.note_entry(db.session(), "expire", -7)
        tally.note_entry(db.session(), "adjust", 99)  # counts nowhere
        db.session.commit()
    after = _business()
    assert after["purchases_recorded"] == before["purchases_recorded"]
    assert after["points_issued"] == before["points_issued"]
    assert after["points_expired"] - before["points_expired"] == 7


def test_a_savepoint_rolled_back_takes_back_only_what_it_noted(app) -> None:
    """As the Stripe webhook records a purchase in a savepoint a rule may roll back."""
    from loyalty.domain import tally
    from loyalty.extensions import db

    before = _business()
    with app.app_context():
        session = db.session()
        session.execute(text("SELECT 1"))
        tally.note(session, tally.PURCHASES_RECORDED)
        with pytest.raises(RuntimeError), session.begin_nested():
            tally.note(session, tally.PURCHASES_RECORDED)
            tally.note_entry(session, "earn", 30)
            raise RuntimeError("refused")
        with session.begin_nested():
            tally.note_entry(session, "earn", 5)
        session.commit()
    after = _business()
    assert after["purchases_recorded"] - before["purchases_recorded"] == 1
    assert after["points_issued"] - before["points_issued"] == 5


def test_job_failures_counted_and_queue_depth_scraped(app, client) -> None:
    jobs = jobs_of(app)
    name = f"obs_boom_{uuid.uuid4().hex[:8]}"

    def boom() -> None:
        raise RuntimeError("boom")

    jobs.task(name, boom)
    logging.getLogger("huey").disabled = True  # Huey logs the failure's traceback itself
    try:
        jobs.enqueue(name)
        jobs.enqueue(name)
    finally:
        logging.getLogger("huey").disabled = False
    assert sample("loyalty_job_failures_total", job=name) == 2
    scraped = scrape(client)
    assert scraped[("loyalty_job_failures_total", (("job", name),))] == 2
    assert scraped[("loyalty_job_queue_up", ())] == 1
    assert scraped[("loyalty_job_queue_depth", ())] == 0  # immediate mode: nothing waits


def test_queue_that_cannot_be_read_reads_as_down() -> None:
    class Broken:
        def pending_count(self) -> int:
            raise ConnectionError("redis down")

    families = list(observability.QueueCollector(Broken()).collect())
    assert [(f.name, f.samples[0].value) for f in families] == [("loyalty_job_queue_up", 0.0)]
