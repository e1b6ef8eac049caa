"""Fixtures: the app on a real database built by running the migrations.

The backend is chosen by LOYALTY_TEST_DB: `sqlite` (default; a file in a temp dir) or `postgres`
(a throw-away database on LOYALTY_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres,
created for the run and dropped after it). `make test` runs the suite once on each.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from loyalty import auth, create_app
from loyalty.extensions import db
from tests import factories

BACKEND = os.environ.get("LOYALTY_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("LOYALTY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_report_header(config: pytest.Config) -> str:
    return f"loyalty test database backend: {BACKEND}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND == "postgres":
        return
    skip = pytest.mark.skip(reason="PostgreSQL only (run with LOYALTY_TEST_DB=postgres)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
        return
    if BACKEND != "postgres":
        raise pytest.UsageError(f"LOYALTY_TEST_DB must be sqlite or postgres, not {BACKEND!r}")
    name = f"loyalty_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def app(database_url: str) -> Iterator[Flask]:
    engine_options: dict[str, Any] = {"pool_pre_ping": True}
    if BACKEND == "postgres":
        engine_options.update(pool_size=40, max_overflow=10)
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "LOYALTY_API_KEY_CACHE_SECONDS": 0,
        }
    )
    with app.app_context():
        upgrade()  # the schema comes from the migrations, never from create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


TABLES_TO_KEEP = {"alembic_version"}


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts from the migrated schema with the default programme and no rows."""
    yield
    if "app" not in request.fixturenames:
        return
    app: Flask = request.getfixturevalue("app")
    auth.clear_cache()
    with app.app_context():
        tables = [t for t in reversed(db.metadata.sorted_tables) if t.name not in TABLES_TO_KEEP]
        if db.engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            # the append-only triggers refuse DELETE: lift them for the clean-up, then restore
            triggers = db.session.execute(
                text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            for name, _sql in triggers:
                db.session.execute(text(f'DROP TRIGGER "{name}"'))
            for table in tables:
                db.session.execute(table.delete())
            for _name, sql in triggers:
                db.session.execute(text(sql))
        db.session.commit()
        from loyalty.domain.program import ensure_program

        ensure_program(db.session)
        db.session.commit()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def session(app: Flask) -> Iterator[Any]:
    """A session in an app context, for domain-level tests (rolled back at the end)."""
    with app.app_context():
        yield db.session
        db.session.rollback()


@pytest.fixture
def api_key(app: Flask) -> Callable[..., dict[str, str]]:
    """`api_key("pos")` → headers with a fresh key of those scopes."""

    def make(*scopes: str, name: str | None = None) -> dict[str, str]:
        with app.app_context():
            key = factories.api_client(db.session, scopes or ("admin",), name=name)
            db.session.commit()
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def admin(api_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    return api_key("admin", name="admin")


@pytest.fixture
def pos(api_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    return api_key("pos", name="till")
