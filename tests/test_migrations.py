"""The schema comes from the migrations, and they agree with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask_migrate import downgrade, upgrade

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
