"""The schema comes from the migrations, and they agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from loyalty.extensions import db


def _diff(app) -> list:
    with app.app_context(), db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, db.metadata)


def test_models_and_migrations_agree(app) -> None:
    """Fails when a model changes without a migration (or the other way round)."""
    assert _diff(app) == []


def test_migrations_downgrade_to_nothing_and_upgrade_again(app) -> None:
    with app.app_context():
        downgrade(revision="base")
        assert db.inspect(db.engine).get_table_names() in ([], ["alembic_version"])
        upgrade()
    assert _diff(app) == []


def test_readyz_reports_pending_migrations(app, client) -> None:
    with app.app_context():
        downgrade(revision="base")
    try:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json["status"] == "migrations_pending"
    finally:
        with app.app_context():
            upgrade()
    assert client.get("/readyz").status_code == 200


def test_0012_keeps_api_clients_and_what_refers_to_them(app) -> None:
    """On SQLite 0012 rebuilds api_clients: rows other tables refer to survive, with foreign
    keys on; names become unique among active clients only, and the downgrade renames revoked
    namesakes so the old unique name holds again."""
    insert_client = text(
        "INSERT INTO api_clients (name, key_hash, key_prefix, scopes, created_at, revoked_at) "
        "VALUES (:name, :hash, 'lk_x', '[\"pos\"]', '2026-01-01 00:00:00', :revoked)"
    )
    try:
        with app.app_context():
            downgrade(revision="0011")
            db.session.execute(insert_client, {"name": "till", "hash": "a" * 64, "revoked": None})
            db.session.execute(
                text(
                    "INSERT INTO idempotency_records (api_client_id, key, request_hash, created_at)"
                    " SELECT id, 'k1', 'h', '2026-01-01 00:00:00' FROM api_clients"
                )
            )
            db.session.commit()
            upgrade(revision="0012")
            db.session.execute(text("UPDATE api_clients SET revoked_at = '2026-02-01 00:00:00'"))
            db.session.execute(insert_client, {"name": "till", "hash": "b" * 64, "revoked": None})
            db.session.commit()
            rows = db.session.execute(
                text(
                    "SELECT c.name, c.revoked_at IS NULL, count(r.id) FROM api_clients c LEFT JOIN"
                    " idempotency_records r ON r.api_client_id = c.id GROUP BY c.id ORDER BY c.id"
                )
            ).all()
            assert [tuple(r) for r in rows] == [("till", False, 1), ("till", True, 0)]
            if db.engine.dialect.name == "sqlite":
                assert db.session.execute(text("PRAGMA foreign_key_check")).all() == []
                assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
            db.session.commit()
            downgrade(revision="0011")
            names = db.session.execute(text("SELECT name FROM api_clients ORDER BY id")).all()
            first_id = db.session.execute(text("SELECT min(id) FROM api_clients")).scalar()
            assert [n for (n,) in names] == [f"till #{first_id}", "till"]
            db.session.commit()
    finally:
        with app.app_context():
            db.session.rollback()
            upgrade()
    assert _diff(app) == []
