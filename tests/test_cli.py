"""`flask loyalty ...` commands."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from loyalty.extensions import db
from loyalty.models import ApiClient, IdempotencyRecord, Member
from loyalty.models.types import utcnow


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


def test_seed_demo_seeds_once_and_prints_working_keys_every_time(app, runner, client) -> None:
    first = runner.invoke(args=["loyalty", "seed-demo"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["loyalty", "seed-demo"])
    assert "already present" in second.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Member)) == 3
    old_key = first.output.splitlines()[-1].split()[-1]
    key = second.output.splitlines()[-1].split()[-1]
    assert (
        client.get("/api/v1/members", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    )
    assert (
        client.get("/api/v1/members", headers={"Authorization": f"Bearer {old_key}"}).status_code
        == 401
    )
    r = client.get("/api/v1/cards/9900000000000002", headers={"Authorization": f"Bearer {key}"})
    assert r.json["member"]["name"] == "Chloé Demo"


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
