"""`flask loyalty ...` commands."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from loyalty.app import create_app
from loyalty.extensions import api, db
from loyalty.models import ApiClient, AuditEntry, IdempotencyRecord, Member
from loyalty.models.types import utcnow


def _key(result: Any) -> str:
    """The key a key command printed alone on its last line."""
    assert result.exit_code == 0, result.output
    key = result.output.rstrip("\n").splitlines()[-1]
    assert key.startswith("lk_") and " " not in key
    return key


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _status(client: Any, key: str) -> int:
    return client.get("/api/v1/program", headers=_bearer(key)).status_code


def test_create_api_key_prints_the_key_alone_on_the_last_line_and_stores_a_hash(
    app, runner, client
) -> None:
    out = runner.invoke(
        args=["loyalty", "create-api-key", "till-1", "--scope", "pos", "--scope", "webshop"]
    )
    assert out.exit_code == 0, out.output
    key = out.output.rstrip("\n").splitlines()[-1]
    assert key.startswith("lk_") and " " not in key
    with app.app_context():
        stored = db.session.scalar(select(ApiClient).where(ApiClient.name == "till-1"))
        assert stored.scopes == ["pos", "webshop"] and key not in stored.key_hash
    r = client.get("/api/v1/program", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200


def test_create_api_key_refuses_a_duplicate_name_and_an_unknown_scope(runner) -> None:
    assert runner.invoke(args=["loyalty", "create-api-key", "a", "--scope", "pos"]).exit_code == 0
    assert runner.invoke(args=["loyalty", "create-api-key", "a", "--scope", "pos"]).exit_code != 0
    assert runner.invoke(args=["loyalty", "create-api-key", "b", "--scope", "root"]).exit_code != 0


def test_list_and_revoke(runner) -> None:
    runner.invoke(args=["loyalty", "create-api-key", "till-1", "--scope", "pos"])
    listed = runner.invoke(args=["loyalty", "list-api-keys"]).output
    assert "till-1\tpos\t" in listed and "active" in listed
    assert runner.invoke(args=["loyalty", "revoke-api-key", "till-1"]).exit_code == 0
    assert "revoked" in runner.invoke(args=["loyalty", "list-api-keys"]).output
    assert runner.invoke(args=["loyalty", "revoke-api-key", "nobody"]).exit_code != 0


def test_seed_demo_loads_an_empty_database_once_and_then_leaves_it_and_its_keys_alone(
    app, runner, client
) -> None:
    first = runner.invoke(args=["loyalty", "seed-demo"])
    assert first.exit_code == 0, first.output
    assert "Demo programme, 3 members with points and 3 rewards created." in first.output
    admin_key = first.output.splitlines()[-1].split()[-1]
    pos_key = next(x for x in first.output.splitlines() if x.startswith("demo-pos")).split()[-1]
    assert "Open http://127.0.0.1:5000/api/v1/docs" in first.output

    second = runner.invoke(args=["loyalty", "seed-demo"])
    assert second.exit_code == 0, second.output
    assert "the demo was not loaded" in second.output and "lk_" not in second.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 3
        assert db.session.scalar(select(func.count()).select_from(ApiClient)) == 2
    # the keys printed the first time still work: nothing was revoked or re-issued
    assert client.get("/api/v1/members", headers=_bearer(admin_key)).status_code == 200
    r = client.get("/api/v1/cards/9900000000000002", headers=_bearer(pos_key))
    assert r.status_code == 200 and r.json["member"]["name"] == "Chloé Demo"
    assert r.json["balance"]["points"] == 1000


def test_seed_demo_never_restores_a_revoked_demo_key(app, runner, client) -> None:
    admin_key = runner.invoke(args=["loyalty", "seed-demo"]).output.splitlines()[-1].split()[-1]
    assert runner.invoke(args=["loyalty", "revoke-api-key", "demo-admin"]).exit_code == 0
    again = runner.invoke(args=["loyalty", "seed-demo"])
    assert again.exit_code == 0 and "lk_" not in again.output
    assert _status(client, admin_key) == 401
    with app.app_context():
        demo_admin = db.session.scalars(
            select(ApiClient).where(ApiClient.name == "demo-admin")
        ).all()
        assert len(demo_admin) == 1 and demo_admin[0].revoked_at is not None


def test_seed_demo_leaves_a_database_in_use_alone(app, runner, client, pos) -> None:
    """A database with anything in it (here one member and the till's key) is in use."""
    client.post("/api/v1/members", json={"name": "Ann"}, headers=pos)
    out = runner.invoke(args=["loyalty", "seed-demo", "--url", "http://[::1]:8080"])
    assert out.exit_code == 0, out.output
    assert "the demo was not loaded" in out.output
    assert "API docs: http://[::1]:8080/api/v1/docs" in out.output
    with app.app_context():
        assert db.session.scalars(select(Member.name)).all() == ["Ann"]
        assert db.session.scalars(select(ApiClient.name)).all() == ["till"]
    assert _status(client, pos["Authorization"].split()[-1]) == 200


def test_seed_demo_prints_the_address_it_is_given(runner) -> None:
    out = runner.invoke(args=["loyalty", "seed-demo", "--url", "http://127.0.0.1:8080/"])
    assert out.exit_code == 0, out.output
    assert "Open http://127.0.0.1:8080/api/v1/docs and authorise" in out.output
    assert ":5000" not in out.output


def test_prune_idempotency_deletes_only_old_records(app, runner, client, pos) -> None:
    client.post("/api/v1/members", json={}, headers={**pos, "Idempotency-Key": "fresh"})
    client.post("/api/v1/members", json={}, headers={**pos, "Idempotency-Key": "old"})
    with app.app_context():
        db.session.execute(
            db.update(IdempotencyRecord)
            .where(IdempotencyRecord.key == "old")
            .values(created_at=utcnow() - timedelta(hours=49))
        )
        db.session.commit()
    out = runner.invoke(args=["loyalty", "prune-idempotency"])
    assert "Pruned 1 " in out.output
    with app.app_context():
        assert db.session.scalars(select(IdempotencyRecord.key)).all() == ["fresh"]


def test_demo_data_leaves_the_readme_example_free(runner, client, pos) -> None:
    """The README enrols ann@example.com right after `make run`."""
    assert runner.invoke(args=["loyalty", "seed-demo"]).exit_code == 0
    r = client.post(
        "/api/v1/members", json={"name": "Ann", "email": "ann@example.com"}, headers=pos
    )
    assert r.status_code == 201


def test_verify_ledger_passes_on_good_books_and_exits_1_on_a_mismatch(
    app, runner, client, pos
) -> None:
    m = client.post("/api/v1/members", json={}, headers=pos).json
    body = {"external_id": "s1", "member_id": m["id"], "amount": 5000, "currency": "EUR"}
    p = client.post("/api/v1/purchases", json=body, headers=pos).json
    client.post(
        f"/api/v1/purchases/{p['id']}/returns",
        json={"external_id": "r1", "amount": 100},
        headers=pos,
    )
    ok = runner.invoke(args=["loyalty", "verify-ledger"])
    assert ok.exit_code == 0 and "Checked 1 members and 2 ledger entries." in ok.output
    with app.app_context():
        db.session.execute(db.text("UPDATE members SET points = points + 7"))
        db.session.commit()
    bad = runner.invoke(args=["loyalty", "verify-ledger"])
    assert bad.exit_code == 1
    assert "MISMATCH cached balance != sum of entries" in bad.output


def test_a_revoked_clients_name_can_be_given_to_a_new_client(app, runner, client) -> None:
    old = _key(runner.invoke(args=["loyalty", "create-api-key", "till-1", "--scope", "pos"]))
    refused = runner.invoke(args=["loyalty", "create-api-key", "till-1", "--scope", "pos"])
    assert refused.exit_code == 1 and "is active" in refused.output
    assert runner.invoke(args=["loyalty", "revoke-api-key", "till-1"]).exit_code == 0
    new = _key(runner.invoke(args=["loyalty", "create-api-key", "till-1", "--scope", "admin"]))
    assert _status(client, new) == 200 and _status(client, old) == 401
    with app.app_context():
        rows = db.session.scalars(
            select(ApiClient).where(ApiClient.name == "till-1").order_by(ApiClient.id)
        ).all()
        assert [r.scopes for r in rows] == [["pos"], ["admin"]]
        assert [r.revoked_at is None for r in rows] == [False, True]
    listed = runner.invoke(args=["loyalty", "list-api-keys"]).output.splitlines()
    assert [line.split("\t")[3][:7] for line in listed] == ["revoked", "active"]
    # revoking again revokes the active one; then both are revoked, and it says so
    assert (
        runner.invoke(args=["loyalty", "revoke-api-key", "till-1"]).output == "Revoked 'till-1'.\n"
    )
    again = runner.invoke(args=["loyalty", "revoke-api-key", "till-1"])
    assert again.exit_code == 0 and "revoked already" in again.output
    assert _status(client, new) == 401


def test_no_key_is_issued_under_the_services_own_client_names(runner) -> None:
    for name in ("stripe", "import"):
        out = runner.invoke(args=["loyalty", "create-api-key", name, "--scope", "admin"])
        assert out.exit_code == 1 and "reserved" in out.output


def test_rotate_gives_a_new_key_and_the_old_one_works_for_the_grace_period(
    app, runner, client
) -> None:
    old = _key(runner.invoke(args=["loyalty", "create-api-key", "shop", "--scope", "webshop"]))
    rotated = runner.invoke(args=["loyalty", "rotate-api-key", "shop"])
    new = _key(rotated)
    assert new != old and "the old key keeps working until" in rotated.output
    assert _status(client, new) == 200 and _status(client, old) == 200
    with app.app_context():
        shop = db.session.scalar(select(ApiClient).where(ApiClient.name == "shop"))
        grace = shop.previous_key_expires_at - utcnow()
        assert timedelta(hours=23, minutes=59) < grace <= timedelta(hours=24)  # the default
        assert shop.key_prefix == new[:12] and shop.scopes == ["webshop"]
    assert "old key until" in runner.invoke(args=["loyalty", "list-api-keys"]).output
    # the grace period ends: the old key stops, the new one goes on
    with app.app_context():
        shop = db.session.scalar(select(ApiClient).where(ApiClient.name == "shop"))
        shop.previous_key_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert _status(client, old) == 401 and _status(client, new) == 200


def test_a_rotated_key_is_the_same_client(runner, client) -> None:
    """Idempotency-Keys and external_ids belong to the client, not to one key of it."""
    old = _key(runner.invoke(args=["loyalty", "create-api-key", "till", "--scope", "pos"]))
    new = _key(runner.invoke(args=["loyalty", "rotate-api-key", "till"]))
    first = client.post(
        "/api/v1/members", json={}, headers={**_bearer(old), "Idempotency-Key": "enrol-1"}
    )
    retry = client.post(
        "/api/v1/members", json={}, headers={**_bearer(new), "Idempotency-Key": "enrol-1"}
    )
    assert first.status_code == retry.status_code == 201
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json["id"] == first.json["id"]


def test_rotate_grace_is_configurable_and_zero_stops_the_old_key_at_once(
    app, runner, client, monkeypatch
) -> None:
    first = _key(runner.invoke(args=["loyalty", "create-api-key", "till", "--scope", "pos"]))
    monkeypatch.setitem(app.config, "LOYALTY_API_KEY_GRACE_HOURS", 2)
    second = _key(runner.invoke(args=["loyalty", "rotate-api-key", "till"]))
    with app.app_context():
        till = db.session.scalar(select(ApiClient).where(ApiClient.name == "till"))
        grace = till.previous_key_expires_at - utcnow()
        assert timedelta(hours=1, minutes=59) < grace <= timedelta(hours=2)
    third = runner.invoke(args=["loyalty", "rotate-api-key", "till", "--grace-hours", "0"])
    assert "the old key stopped working now" in third.output
    # at most two keys work: the one replaced before the last rotation stops too
    assert [_status(client, k) for k in (first, second, _key(third))] == [401, 401, 200]


def test_revoking_stops_a_rotated_clients_old_key_too(runner, client) -> None:
    old = _key(runner.invoke(args=["loyalty", "create-api-key", "till", "--scope", "pos"]))
    new = _key(runner.invoke(args=["loyalty", "rotate-api-key", "till"]))
    assert runner.invoke(args=["loyalty", "revoke-api-key", "till"]).exit_code == 0
    assert _status(client, old) == _status(client, new) == 401


def test_rotate_refuses_unknown_and_revoked_clients(runner) -> None:
    assert runner.invoke(args=["loyalty", "rotate-api-key", "nobody"]).exit_code == 1
    runner.invoke(args=["loyalty", "create-api-key", "gone", "--scope", "pos"])
    runner.invoke(args=["loyalty", "revoke-api-key", "gone"])
    out = runner.invoke(args=["loyalty", "rotate-api-key", "gone"])
    assert out.exit_code == 1 and "No active API client named 'gone'" in out.output


@pytest.fixture
def second_app(app: Flask, database_url: str) -> Iterator[Flask]:
    """Another application on the same database, as a second app server (gunicorn worker) is.
    flask-smorest's Api binds the last app it was given: the first one's binding is restored."""
    bound = dict(vars(api))
    other = create_app({**app.config, "SQLALCHEMY_DATABASE_URI": database_url})
    try:
        yield other
    finally:
        with other.app_context():
            db.engine.dispose()
        vars(api).clear()
        vars(api).update(bound)


def test_a_revoked_or_expired_key_stops_at_once_on_every_app_server(
    app, second_app, runner, client
) -> None:
    other = second_app.test_client()
    key = _key(runner.invoke(args=["loyalty", "create-api-key", "till", "--scope", "pos"]))
    assert _status(client, key) == _status(other, key) == 200  # both servers have seen it
    new = _key(runner.invoke(args=["loyalty", "rotate-api-key", "till"]))
    assert _status(other, key) == _status(other, new) == 200
    with app.app_context():  # the grace period ends, written by the first server's process
        till = db.session.scalar(select(ApiClient).where(ApiClient.name == "till"))
        till.previous_key_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert _status(other, key) == 401 and _status(other, new) == 200
    assert runner.invoke(args=["loyalty", "revoke-api-key", "till"]).exit_code == 0
    assert _status(other, new) == _status(client, new) == 401


def _client_named(app: Flask, name: str) -> ApiClient:
    with app.app_context():
        found = db.session.scalar(
            select(ApiClient).where(ApiClient.name == name).order_by(ApiClient.id.desc())
        )
        db.session.expunge(found)
        return found


def test_a_key_can_expire_and_a_rotation_keeps_its_expiry_or_sets_a_new_one(
    app, runner, client
) -> None:
    made = runner.invoke(
        args=["loyalty", "create-api-key", "temp", "--scope", "pos", "--expires-in-days", "7"]
    )
    key = _key(made)
    assert "It expires " in made.output
    expires = _client_named(app, "temp").expires_at
    assert timedelta(days=6, hours=23) < expires - utcnow() <= timedelta(days=7)
    assert _status(client, key) == 200
    # rotated: the new key expires when the old one would have
    new = _key(runner.invoke(args=["loyalty", "rotate-api-key", "temp"]))
    assert _client_named(app, "temp").expires_at == expires
    # rotated with a new expiry
    rotated = runner.invoke(args=["loyalty", "rotate-api-key", "temp", "--expires-in-days", "30"])
    newer = _key(rotated)
    assert "The new key expires " in rotated.output
    assert _client_named(app, "temp").expires_at - utcnow() > timedelta(days=29)
    # the date passes: every key of the client stops, the one in its grace period too
    with app.app_context():
        stored = db.session.scalar(select(ApiClient).where(ApiClient.name == "temp"))
        stored.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert _status(client, newer) == 401 and _status(client, new) == 401
    listed = runner.invoke(args=["loyalty", "list-api-keys"]).output.splitlines()
    assert [line.split("\t")[3][:7] for line in listed] == ["expired"]


@pytest.mark.parametrize("days", ["0", "3651", "x"])
def test_an_expiry_out_of_range_is_refused(runner, days) -> None:
    out = runner.invoke(
        args=["loyalty", "create-api-key", "t", "--scope", "pos", "--expires-in-days", days]
    )
    assert out.exit_code == 2 and "expires-in-days" in out.output


def test_a_key_bound_to_a_store_is_listed_with_it_and_its_last_use(app, runner, client) -> None:
    made = runner.invoke(
        args=["loyalty", "create-api-key", "till-s1", "--scope", "pos", "--store", "S1"]
    )
    key = _key(made)
    assert "It posts for store 'S1' only." in made.output
    assert _client_named(app, "till-s1").store_id == "S1"
    (line,) = runner.invoke(args=["loyalty", "list-api-keys"]).output.splitlines()
    assert line.split("\t")[3:] == ["active", "store S1", "never used"]
    assert _status(client, key) == 200
    (line,) = runner.invoke(args=["loyalty", "list-api-keys"]).output.splitlines()
    assert line.split("\t")[5].startswith(f"used {utcnow():%Y-%m-%d}")
    blank = runner.invoke(
        args=["loyalty", "create-api-key", "t2", "--scope", "pos", "--store", " "]
    )
    assert blank.exit_code == 1 and "store id" in blank.output


def test_key_commands_are_in_the_audit_trail_without_the_key(app, runner) -> None:
    created = _key(runner.invoke(args=["loyalty", "create-api-key", "till", "--scope", "pos"]))
    rotated = _key(runner.invoke(args=["loyalty", "rotate-api-key", "till", "--grace-hours", "0"]))
    assert runner.invoke(args=["loyalty", "revoke-api-key", "till"]).exit_code == 0
    client_id = _client_named(app, "till").id
    with app.app_context():
        trail = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        rows = [(e.action, e.actor, e.api_client_id, e.target_type, e.target_id) for e in trail]
        details = [e.detail for e in trail]
    assert rows == [
        ("api_key.create", "cli", None, "api_key", str(client_id)),
        ("api_key.rotate", "cli", None, "api_key", str(client_id)),
        ("api_key.revoke", "cli", None, "api_key", str(client_id)),
    ]
    assert details[0]["changes"] == {
        "name": [None, "till"],
        "scopes": [None, ["pos"]],
    }
    assert details[1]["changes"] == {"key_prefix": [created[:12], rotated[:12]]}
    assert details[1]["previous_key_until"] is None
    assert list(details[2]["changes"]) == ["revoked_at"]
    text_of_trail = repr(details)
    for secret in (created, rotated, created[12:], rotated[12:]):
        assert secret not in text_of_trail
