"""/healthz (the process is up), /readyz (the database answers, at the latest migration)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError

from loyalty.extensions import db

bp = Blueprint("health", __name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def migration_heads() -> set[str]:
    """The head revisions of the migration scripts (read once per process)."""
    heads = current_app.extensions.get("loyalty_migration_heads")
    if heads is None:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        heads = set(ScriptDirectory.from_config(config).get_heads())
        current_app.extensions["loyalty_migration_heads"] = heads
    return heads


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    try:
        with db.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        return jsonify(status="unavailable", database=type(exc).__name__), 503
    expected = migration_heads()
    if current != expected:
        return (
            jsonify(
                status="migrations_pending", current=sorted(current), expected=sorted(expected)
            ),
            503,
        )
    return jsonify(status="ok", migration=sorted(current))
