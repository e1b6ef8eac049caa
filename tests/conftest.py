"""Fixtures: the app on a real database built by running the migrations.

The backend is chosen by LOYALTY_TEST_DB: `sqlite` (default; a file in a temp dir) or `postgres`
(a throw-away database on LOYALTY_TEST_PG, default postgresql://postgres@127.0.0.1:5432/postgres,
created for the run and dropped after it). `make test` runs the suite once on each. Tests marked
`postgres` run on the PostgreSQL pass only, tests marked `sqlite` on the SQLite pass only.

Helpers shared between test modules are fixtures here or functions in tests/factories.py.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from loyalty import readdb
from loyalty.app import create_app
from loyalty.domain.context import Actor
from loyalty.domain.program import ensure_program
from loyalty.extensions import api, db
from loyalty.ratelimits import SETTINGS as RATE_LIMIT_SETTINGS
from tests import factories, stripe_server

BACKEND = os.environ.get("LOYALTY_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("LOYALTY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_configure(config: pytest.Config) -> None:
    if BACKEND not in ("sqlite", "postgres"):
        raise pytest.UsageError(f"LOYALTY_TEST_DB must be sqlite or postgres, not {BACKEND!r}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"loyalty test database backend: {BACKEND}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    other = "sqlite" if BACKEND == "postgres" else "postgres"
    skip = pytest.mark.skip(reason=f"{other} only (run with LOYALTY_TEST_DB={other})")
    for item in items:
        if item.get_closest_marker(other) is not None:
            item.add_marker(skip)


@contextmanager
def _throwaway_database(prefix: str, directory: Path) -> Iterator[str]:
    """An empty database on the pass's backend; yields its URL (sqlite:///… or postgresql://…).

    SQLite: a file in `directory`. PostgreSQL: a new database on LOYALTY_TEST_PG, dropped after.
    """
    if BACKEND == "sqlite":
        yield f"sqlite:///{directory / f'{prefix}.sqlite3'}"
        return
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def new_database(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], AbstractContextManager[str]]:
    """`with new_database("loyalty_e2e") as url:` an empty database of the pass's backend."""

    def make(prefix: str) -> AbstractContextManager[str]:
        return _throwaway_database(prefix, tmp_path_factory.mktemp(prefix))

    return make


@pytest.fixture(scope="session")
def database_url(new_database: Callable[[str], AbstractContextManager[str]]) -> Iterator[str]:
    """The run's database, for SQLAlchemy (psycopg 3 on PostgreSQL)."""
    with new_database("loyalty_test") as url:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)


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
            # jobs run at once where they are enqueued; tests/jobs/ run them through a queue
            "LOYALTY_JOBS_IMMEDIATE": True,
            # limits no test reaches (tests/api/test_rate_limits.py makes apps with low ones)
            **{name: "1000000/minute" for name in RATE_LIMIT_SETTINGS},
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
        ensure_program(db.session)
        db.session.commit()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_app(app: Flask) -> Iterator[Callable[..., Flask]]:
    """`make_app(LOYALTY_RATE_LIMIT_LOOKUPS="3/minute")`: another app server on the run's
    database, with the session app's config and these settings. flask-smorest's Api binds the
    last app it was given: the session app's binding is restored after the test."""
    bound = dict(vars(api))
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        other = create_app({**app.config, **overrides})
        made.append(other)
        return other

    try:
        yield make
    finally:
        for other in made:
            with other.app_context():
                db.engine.dispose()
            if readdb.EXTENSION in other.extensions:  # LOYALTY_READ_DATABASE_URL's engine
                other.extensions[readdb.EXTENSION].dispose()
        vars(api).clear()
        vars(api).update(bound)


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
    """`api_key("pos")` → headers with a fresh key of those scopes; `api_key("pos",
    store_id="S1")`, `expires_at=…`, `revoked_at=…` set those columns of its client."""

    def make(*scopes: str, name: str | None = None, **fields: Any) -> dict[str, str]:
        with app.app_context():
            key = factories.api_client(db.session, scopes or ("admin",), name=name, **fields)
            db.session.commit()
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture
def admin(api_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    return api_key("admin", name="admin")


@pytest.fixture
def pos(api_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    return api_key("pos", name="till")


@pytest.fixture
def till(session: Any) -> Actor:
    """An API client with the pos scope, as the Actor domain-level tests act as."""
    return factories.actor(session, ("pos",), name="till")


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """localstripe on loopback, one for the whole run (its aiohttp app cannot run twice)."""
    with stripe_server.localstripe() as url:
        yield url
