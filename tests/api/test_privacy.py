"""Privacy: the member's export (right of access), searches without personal data in URLs, no
personal data in any log line (app, SQLAlchemy, gunicorn), private files on disk."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import IntegrityError

from loyalty import app as app_module
from loyalty.config import _secret_key
from loyalty.domain import members as members_domain
from loyalty.domain.sql import constraint_name
from loyalty.errors import CONSTRAINT_ERRORS
from loyalty.extensions import db
from loyalty.models import Member
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

EMAIL, PHONE = "rosalind.privacy@example.com", "+31612349876"
EMAIL_2, PHONE_2 = "grete.private@example.org", "+4915123456789"


def _enrol(client, headers, **fields) -> dict:
    r = client.post("/api/v1/members", json={"name": "Rosalind", **fields}, headers=headers)
    assert r.status_code == 201, r.json
    return r.json


# --- POST /members/search ----------------------------------------------------------------------
def test_search_by_post_body_matches_what_get_finds(client, admin) -> None:
    ann = _enrol(client, admin, email=EMAIL, phone=PHONE)
    other = _enrol(client, admin, email=EMAIL_2, phone=PHONE_2, name="Grete")
    url = "/api/v1/members/search"
    by_email = client.post(url, json={"email": EMAIL.upper()}, headers=admin)
    assert by_email.status_code == 200, by_email.json
    assert [m["id"] for m in by_email.json] == [ann["id"]]
    assert by_email.json[0]["email"] == EMAIL and by_email.json[0]["phone"] == PHONE
    assert by_email.headers["X-Total-Count"] == "1"
    by_phone = client.post(url, json={"phone": PHONE_2}, headers=admin)
    assert [m["id"] for m in by_phone.json] == [other["id"]]
    by_card = client.post(url, json={"card_number": ann["card_number"]}, headers=admin)
    assert [m["id"] for m in by_card.json] == [ann["id"]]
    both = client.post(url, json={"q": "example"}, headers=admin)
    assert [m["id"] for m in both.json] == [other["id"], ann["id"]]  # newest first
    page = client.post(f"{url}?page=2&page_size=1", json={"q": "example"}, headers=admin)
    assert [m["id"] for m in page.json] == [ann["id"]] and page.headers["X-Total-Count"] == "2"
    none = client.post(url, json={"email": EMAIL, "phone": PHONE_2}, headers=admin)
    assert none.json == [] and none.headers["X-Total-Count"] == "0"
    everyone = client.post(url, json={}, headers=admin)
    assert len(everyone.json) == 2
    # the GET keeps working for existing clients, with the same answer
    get = client.get("/api/v1/members", query_string={"email": EMAIL}, headers=admin)
    assert get.status_code == 200 and get.json == by_email.json


def test_search_by_post_refusals(client, admin, pos) -> None:
    url = "/api/v1/members/search"
    bad = client.post(url, json={"email": "not an e-mail"}, headers=admin)
    assert bad.status_code == 422 and "email" in bad.json["errors"]
    unknown = client.post(url, json={"mail": EMAIL}, headers=admin)
    assert unknown.status_code == 422 and "mail" in unknown.json["errors"]
    assert client.post(url, json={"email": EMAIL}, headers=pos).status_code == 403
    assert client.post(url, json={"email": EMAIL}).status_code == 401
    typed = client.post(url, data="email=x", headers={**admin, "Content-Type": "text/plain"})
    assert typed.status_code == 415


# --- GET /members/{id}/export ------------------------------------------------------------------
def test_export_holds_everything_about_the_member(client, admin, pos) -> None:
    ann = _enrol(client, admin, email=EMAIL, phone=PHONE, external_ref="crm-77")
    other = _enrol(client, admin, email=EMAIL_2, name="Grete")
    sale = {
        "external_id": "exp-1",
        "amount": 2000,
        "currency": "EUR",
        "member_id": ann["id"],
        "lines": [{"sku": "TEA", "quantity": 2, "unit_price": 1000}],
    }
    bought = client.post("/api/v1/purchases", json=sale, headers=pos)
    assert bought.status_code == 201, bought.json
    client.post(  # another member's purchase: not in the export
        "/api/v1/purchases",
        json={"external_id": "exp-2", "amount": 500, "currency": "EUR", "member_id": other["id"]},
        headers=pos,
    )
    returned = client.post(
        f"/api/v1/purchases/{bought.json['id']}/returns",
        json={"external_id": "ret-1", "amount": 1000},
        headers=pos,
    )
    assert returned.status_code == 201, returned.json
    factories.goodwill_code(client, admin, ann["id"])
    adjusted = client.post(
        f"/api/v1/members/{ann['id']}/adjustments",
        json={"points": 300, "reason": "seed"},
        headers=admin,
    )
    assert adjusted.status_code == 201
    reward = client.post(
        "/api/v1/rewards",
        json={"name": "Coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 100},
        headers=admin,
    ).json
    reserved = client.post(
        "/api/v1/redemptions", json={"member_id": ann["id"], "reward_id": reward["id"]}, headers=pos
    )
    assert reserved.status_code == 201, reserved.json
    feedback = client.post(
        "/api/v1/feedback",
        json={"member_id": ann["id"], "purchase_id": bought.json["id"], "nps": 9, "comment": "ok"},
        headers=pos,
    )
    assert feedback.status_code == 201, feedback.json
    patched = client.patch(f"/api/v1/members/{ann['id']}", json={"name": "Ros"}, headers=admin)
    assert patched.status_code == 200

    r = client.get(f"/api/v1/members/{ann['id']}/export", headers=admin)
    assert r.status_code == 200, r.json
    data = r.json
    assert list(data) == [
        "exported_at",
        "member",
        "cards",
        "ledger",
        "point_lots",
        "tier_changes",
        "purchases",
        "returns",
        "vouchers",
        "voucher_holdouts",
        "redemptions",
        "feedback",
        "audit_entries",
    ]
    member = data["member"]
    assert (member["id"], member["name"], member["email"], member["phone"]) == (
        ann["id"],
        "Ros",
        EMAIL,
        PHONE,
    )
    assert member["external_ref"] == "crm-77" and member["erased_at"] is None
    assert [c["number"] for c in data["cards"]] == [ann["card_number"]]
    assert [(p["external_id"], p["amount"]) for p in data["purchases"]] == [("exp-1", 2000)]
    lines = data["purchases"][0]["lines"]
    assert [(x["sku"], x["quantity"], x["unit_price"]) for x in lines] == [("TEA", 2, 1000)]
    assert [(x["external_id"], x["amount"]) for x in data["returns"]] == [("ret-1", 1000)]
    assert [v["kind"] for v in data["vouchers"]] == ["goodwill"]
    assert [(x["reward_id"], x["status"], x["points"]) for x in data["redemptions"]] == [
        (reward["id"], "reserved", 100)
    ]
    assert [(f["nps"], f["comment"]) for f in data["feedback"]] == [(9, "ok")]
    ledger = data["ledger"]
    assert {e["member_id"] for e in ledger} == {ann["id"]}
    assert sum(e["points"] for e in ledger) == member["points"]
    assert {"earn", "reverse", "adjust"} <= {e["kind"] for e in ledger}
    lots = data["point_lots"]
    assert {lot["member_id"] for lot in lots} == {ann["id"]}
    assert sum(lot["remaining"] for lot in lots) == member["points"]
    assert data["tier_changes"] == [] and data["voucher_holdouts"] == []
    actions = [a["action"] for a in data["audit_entries"]]
    assert "member.update" in actions and "points.adjust" in actions
    assert all(a["target_id"] == str(ann["id"]) for a in data["audit_entries"])
    assert data["exported_at"].endswith("+00:00")
    # nothing of the other member
    assert EMAIL_2 not in r.get_data(as_text=True)


def test_export_is_admin_only_and_404_for_no_member(client, admin, pos) -> None:
    ann = _enrol(client, admin, email=EMAIL)
    assert client.get(f"/api/v1/members/{ann['id']}/export", headers=pos).status_code == 403
    assert client.get(f"/api/v1/members/{ann['id']}/export").status_code == 401
    missing = client.get("/api/v1/members/99999/export", headers=admin)
    assert missing.status_code == 404 and missing.json["code"] == "not_found"


def test_export_of_an_erased_member_holds_no_personal_data(client, admin) -> None:
    ann = _enrol(client, admin, email=EMAIL, phone=PHONE)
    assert client.delete(f"/api/v1/members/{ann['id']}", headers=admin).status_code == 204
    r = client.get(f"/api/v1/members/{ann['id']}/export", headers=admin)
    assert r.status_code == 200
    assert r.json["member"]["email"] is None and r.json["member"]["erased_at"] is not None
    body = r.get_data(as_text=True)
    assert EMAIL not in body and PHONE not in body and "Rosalind" not in body


# --- nothing personal in any log line ----------------------------------------------------------
def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as it could be written: message, arguments, extras, traceback."""
    formatter = logging.Formatter()
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        parts.append(repr({k: v for k, v in record.__dict__.items() if k != "args"}))
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


def test_no_email_or_phone_in_any_log_line(client, admin, pos, caplog, monkeypatch) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "loyalty", "werkzeug", "huey"):
        caplog.set_level(logging.DEBUG, logger=name)
    ann = _enrol(client, pos, email=EMAIL, phone=PHONE)
    _enrol(client, admin, email=EMAIL_2, phone=PHONE_2, name="Grete")
    # searches, both ways, with hits and misses
    assert client.get("/api/v1/members", query_string={"email": EMAIL}, headers=admin).json
    client.get("/api/v1/members", query_string={"phone": PHONE, "q": "rosalind"}, headers=admin)
    client.post("/api/v1/members/search", json={"email": EMAIL_2}, headers=admin)
    client.post("/api/v1/members/search", json={"phone": "+31 6 1234 9876"}, headers=admin)
    client.get(f"/api/v1/members/{ann['id']}/export", headers=admin)
    # refusals: taken e-mail and phone, bad input, no key, a path that matches nothing
    taken = client.post("/api/v1/members", json={"email": EMAIL}, headers=pos)
    assert taken.status_code == 409 and taken.json["code"] == "email_taken"
    assert client.post("/api/v1/members", json={"phone": PHONE}, headers=pos).status_code == 409
    client.post("/api/v1/members", json={"email": EMAIL + "@@"}, headers=pos)
    client.get("/api/v1/members", query_string={"email": EMAIL})
    client.get(f"/api/v1/members/{EMAIL}", headers=admin)
    client.patch(f"/api/v1/members/{ann['id']}", json={"email": EMAIL_2}, headers=admin)
    # the race: the pre-check passes, the unique index refuses (IntegrityError → 409)
    monkeypatch.setattr(members_domain, "_check_unique", lambda *a, **k: None)
    raced = client.post(
        "/api/v1/members", json={"email": EMAIL, "phone": "+31201234567"}, headers=pos
    )
    assert raced.status_code == 409 and raced.json["code"] == "email_taken"
    raced = client.post("/api/v1/members", json={"phone": PHONE_2}, headers=pos)
    assert raced.status_code == 409 and raced.json["code"] == "phone_taken"

    # an unexpected database error while searching: logged (500), its parameters hidden
    def failing_search(session, **_kw):
        session.execute(text("SELECT * FROM no_such_table WHERE email = :e"), {"e": EMAIL})

    monkeypatch.setattr(members_domain, "search_members", failing_search)
    crash = client.post("/api/v1/members/search", json={"email": EMAIL}, headers=admin)
    assert crash.status_code == 500 and crash.json["code"] == "internal_error"

    logged = _everything_logged(caplog)
    assert "no_such_table" in logged  # the crash was logged, statement and all
    assert "loyalty.request" in logged and "sqlalchemy.engine" in logged  # SQL was logged too
    assert "hidden due to hide_parameters" in logged
    for value in (EMAIL, PHONE, EMAIL_2, PHONE_2, "rosalind.privacy", "31612349876"):
        assert value not in logged, value
    assert "rosalind" not in logged.lower()  # the q term


def test_engine_hides_bound_parameters_in_errors(app) -> None:
    with app.app_context():
        assert db.engine.hide_parameters is True
        db.session.execute(insert(Member).values(email=EMAIL, points=0, held=0))
        with pytest.raises(IntegrityError) as caught:
            db.session.execute(insert(Member).values(email=EMAIL, points=0, held=0))
        db.session.rollback()
    message = str(caught.value)
    assert "hidden due to hide_parameters" in message
    assert EMAIL not in message
    # PostgreSQL's DETAIL ("Key (email)=(…) already exists") is out of the text and traceback
    # too, while the constraint name the API maps to 409 email_taken is still there
    assert EMAIL not in str(caught.value.orig)
    assert EMAIL not in "".join(traceback.format_exception(caught.value))
    assert constraint_name(caught.value) in CONSTRAINT_ERRORS


# --- files readable by their owner only; engine options --------------------------------------
def _mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _bare_app(tmp_path: Path, **config: object) -> Flask:
    """A Flask app with only the settings `_keep_data_private` reads (create_app would rebind
    the shared extensions, such as the OpenAPI `api`, to a second app)."""
    bare = Flask("bare", instance_path=str(tmp_path / "instance"))
    bare.config.update(config)
    return bare


def test_engine_options_given_by_a_deployment_keep_hide_parameters(tmp_path) -> None:
    bare = _bare_app(
        tmp_path,
        SQLALCHEMY_DATABASE_URI="postgresql+psycopg://db.internal/loyalty",
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
    )
    app_module._keep_data_private(bare)
    assert bare.config["SQLALCHEMY_ENGINE_OPTIONS"] == {
        "pool_pre_ping": True,
        "hide_parameters": True,
    }


def test_sqlite_database_is_made_owner_only_and_its_wal_follows(tmp_path) -> None:
    path = tmp_path / "private.sqlite3"
    bare = _bare_app(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{path}")
    app_module._keep_data_private(bare)
    assert _mode(path) == 0o600  # made before SQLite could make it with the umask's mode
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert _mode(f"{path}-wal") == 0o600 and _mode(f"{path}-shm") == 0o600
    engine.dispose()
    os.chmod(path, 0o644)  # an existing file with a wider mode is tightened at the next start
    app_module._keep_data_private(bare)
    assert _mode(path) == 0o600
    with create_engine(f"sqlite:///{path}").connect() as conn:  # still the same database
        assert conn.exec_driver_sql("SELECT x FROM t").scalar() == 1


@pytest.mark.sqlite
def test_the_apps_sqlite_database_is_owner_only(app: Flask, client) -> None:
    assert client.get("/readyz").status_code == 200  # the app has used its database
    with app.app_context():
        path = db.engine.url.database
    assert path and _mode(path) == 0o600
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            assert _mode(path + suffix) == 0o600


def test_instance_folder_and_secret_key_are_owner_only(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    fresh = tmp_path / "instance"
    app_module.private_dir(str(fresh))
    assert _mode(fresh) == 0o700
    key = _secret_key(str(fresh))
    assert len(key) >= 48 and _mode(fresh / "secret_key") == 0o600
    wide = tmp_path / "old-instance"
    wide.mkdir(mode=0o755)
    os.chmod(wide, 0o755)
    app_module.private_dir(str(wide))
    assert _mode(wide) == 0o700
    loose = tmp_path / "loose"
    loose.write_text("x")
    os.chmod(loose, 0o644)
    app_module.private_file(str(loose))
    assert _mode(loose) == 0o600 and loose.read_text() == "x"


def test_the_apps_instance_folder_is_owner_only(app: Flask) -> None:
    assert _mode(app.instance_path) == 0o700
    if (Path(app.instance_path) / "secret_key").exists():
        assert _mode(Path(app.instance_path) / "secret_key") == 0o600


# --- gunicorn: the access log without query strings, metrics across workers --------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_gunicorn_logs_no_query_string_and_metrics_add_up_across_workers(tmp_path) -> None:
    port = _free_port()
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'g.sqlite3'}",
        "LOYALTY_JOBS_FILE": str(tmp_path / "jobs.sqlite3"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    (tmp_path / "prometheus").mkdir()
    error_file = open(errors, "w")  # noqa: SIM115
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            str(access),
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=error_file,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if _get(base + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start:\n" + errors.read_text())
        query = urllib.parse.urlencode({"email": EMAIL, "phone": PHONE})
        status, _ = _get(f"{base}/api/v1/members?{query}")
        assert status == 401
        for _ in range(20):  # the two workers share them
            assert _get(base + "/readyz")[0] in (200, 503)
        status, body = _get(base + "/metrics")
        assert status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        error_file.close()
    text_ = body.decode()
    readyz = [
        line
        for line in text_.splitlines()
        if line.startswith("loyalty_http_requests_total{") and 'route="/readyz"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in readyz) == 20, text_
    logged = access.read_text() + errors.read_text()
    assert "/api/v1/members" in access.read_text()
    for value in (EMAIL, PHONE, "rosalind", "31612349876", "email="):
        assert value not in logged, value
    request_lines = [line for line in errors.read_text().splitlines() if '"route"' in line]
    assert any(
        '"route": "/api/v1/members"' in line and '"status": 401' in line for line in request_lines
    )
