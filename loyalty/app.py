"""The application factory: config, extensions, blueprints, error handlers, CLI."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from sqlalchemy import event, make_url
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, UnicodeConverter

from loyalty import headers, health, jobs, observability, web
from loyalty.api import (
    audit,
    cards,
    earning_rules,
    feedback,
    members,
    metrics,
    program,
    purchases,
    rewards,
    stripe_webhook,
    vouchers,
)
from loyalty.api.body import LoyaltyRequest, StrictJSONProvider
from loyalty.api.problems import (
    domain_error_response,
    http_error_response,
    internal_error_response,
)
from loyalty.cli import register_cli
from loyalty.config import Config
from loyalty.errors import DomainError
from loyalty.extensions import api, cors, db, limiter, migrate, write_transaction
from loyalty.schemas.common import (
    CARD_NUMBER_DOC,
    CARD_NUMBER_MAX_LENGTH,
    MAX_ID,
    ProgrammeDate,
    ProgrammeDateTime,
)

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations")


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """The application: config from the environment (then `overrides`), extensions, blueprints,
    error handlers, CLI. Migrations are never run here (`flask db upgrade` does that)."""
    app = LoyaltyFlask(__name__, instance_relative_config=True)
    private_dir(app.instance_path)
    app.config.from_object(Config(app.instance_path))
    app.config.update(overrides or {})
    _keep_data_private(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["card"] = CardNumberConverter

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, render_as_batch=True, compare_type=True)
    api.init_app(
        app,
        spec_kwargs={
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}}
        },
    )

    _document_types(app)
    for module in (
        audit,
        members,
        cards,
        purchases,
        rewards,
        vouchers,
        feedback,
        program,
        earning_rules,
        metrics,
        stripe_webhook,
    ):
        api.register_blueprint(module.blp, url_prefix="/api/v1")
    app.register_blueprint(health.bp)
    web.init_app(app)  # the pages: cookie sessions (none under /api/), CSRF, Babel
    _protect(app)

    app.teardown_request(end_transaction)
    app.register_error_handler(DomainError, domain_error_response)
    app.register_error_handler(HTTPException, web.pages_or(http_error_response))
    app.register_error_handler(Exception, internal_error_response)

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _configure_sqlite(db.engine)
        _hide_error_details(db.engine)

    observability.init_app(app, db.session, jobs.init_app(app).huey)
    register_cli(app)
    return app


def _protect(app: Flask) -> None:
    """Rate limits (loyalty/ratelimits.py), security headers and CORS (loyalty/headers.py).
    Behind LOYALTY_PROXY_HOPS proxies, a client's address and scheme are the ones they
    forwarded (the pages' cookies are Secure when the client came over HTTPS)."""
    hops = app.config["LOYALTY_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops
        )
    headers.init_app(app, cors)  # first: its after_request runs after the limiter's
    limiter.init_app(app)


def _document_types(app: Flask) -> None:
    """What the OpenAPI document says of our path converters and fields beyond apispec's own."""
    api.register_converter(
        IdConverter, lambda _c: {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    )
    api.register_converter(
        CardNumberConverter,
        lambda _c: {
            "type": "string",
            "minLength": 1,
            "maxLength": CARD_NUMBER_MAX_LENGTH,
            **CARD_NUMBER_DOC,
        },
    )
    api.ma_plugin.converter.add_attribute_function(_document_date_bounds(app))
    api.ma_plugin.converter.add_attribute_function(_null_means_null)


class LoyaltyFlask(Flask):
    """Request bodies are read by `loyalty.api.body` (strict JSON; 415 for another type)."""

    request_class = LoyaltyRequest
    json_provider_class = StrictJSONProvider


def _document_date_bounds(app: Flask) -> Any:
    """An apispec attribute function: the OpenAPI document states the configured bounds of
    every programme date (OpenAPI 3.0 has no keyword for them, so in words)."""
    first, last = app.config["LOYALTY_MIN_DATE"], app.config["LOYALTY_MAX_DATE"]

    def attributes(_converter: Any, field: Any, ret: dict[str, Any], **_kw: Any) -> dict:
        if not isinstance(field, ProgrammeDate | ProgrammeDateTime):
            return {}
        bounds = f"From {first.isoformat()} to {last.isoformat()} (UTC)."
        said = ret.get("description", "").rstrip(".")
        return {"description": f"{said}. {bounds}" if said else bounds}

    return attributes


#: apispec's "or null" beside a $ref in OpenAPI 3.0, which reads as "or any object, or null".
_ANY_OBJECT_OR_NULL = {"type": "object", "nullable": True}


def _null_means_null(_converter: Any, _field: Any, ret: dict[str, Any], **_kw: Any) -> dict:
    """An apispec attribute function: a nested object that may be null is documented as that
    object or null (`enum: [null]`), not as any object at all."""
    any_of = ret.get("anyOf", [])
    if _ANY_OBJECT_OR_NULL not in any_of:
        return {}
    return {"anyOf": [{**s, "enum": [None]} if s == _ANY_OBJECT_OR_NULL else s for s in any_of]}


class IdConverter(IntegerConverter):
    """A database id in a path: 1 to 2^63 - 1 (BIGINT); anything else does not match (404)."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


class CardNumberConverter(UnicodeConverter):
    """A card number in a path: matched as any segment (the domain answers a mistyped one
    with 422 invalid_card_number), documented as the `card-number` format."""


def _configure_sqlite(engine: Any) -> None:
    """Foreign keys on, WAL, a busy timeout, and transactions we begin ourselves so a write
    transaction takes the write lock at BEGIN (the SQLite equivalent of our row locks)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write_transaction.get() else "BEGIN")


def _hide_error_details(engine: Any) -> None:
    """PostgreSQL names the offending values in an error's DETAIL ("Key (email)=(ann@…) already
    exists"): that line is taken out of the error's text, psycopg's and SQLAlchemy's, so no log
    line or traceback carries it (the engine's `hide_parameters` hides the bound values). The
    diagnostics (`exc.orig.diag`) keep it for the code that maps constraint names."""

    @event.listens_for(engine, "handle_error")
    def _without_detail(context: Any) -> None:
        for exc in (context.original_exception, context.sqlalchemy_exception):
            if exc is not None and exc.args and isinstance(exc.args[0], str):
                kept = [x for x in exc.args[0].split("\n") if not x.startswith("DETAIL:")]
                exc.args = ("\n".join(kept), *exc.args[1:])


def private_dir(path: str) -> None:
    """The instance folder (the SQLite database, the secret key, the job queue): made 0700, and
    made 0700 again if it is ours and others could read it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    _owner_only(path, 0o700)


def private_file(path: str) -> None:
    """A file readable by its owner only: created empty with 0600 if missing, else tightened."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    _owner_only(path, 0o600)


def _owner_only(path: str, mode: int) -> None:
    st = os.stat(path)
    if st.st_uid == os.getuid() and st.st_mode & 0o777 != mode:
        os.chmod(path, mode)


def _keep_data_private(app: Flask) -> None:
    """The SQLite database (SQLite gives its -wal and -shm files the database's mode) and the
    secret key file are readable by their owner only; bound SQL parameters never appear in an
    error or a log line (`hide_parameters`), whatever engine options were given."""
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.setdefault("hide_parameters", True)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    database = url.database or ""
    in_file = database not in ("", ":memory:") and not database.startswith("file:")
    if url.get_backend_name() == "sqlite" and in_file:
        private_file(database)
    secret = os.path.join(app.instance_path, "secret_key")
    if os.path.exists(secret):
        _owner_only(secret, 0o600)


def end_transaction(exc: BaseException | None) -> None:
    """A request that got its answer ends its open transaction with COMMIT: what is left open
    then is a read (every write commits or rolls back in its unit of work), with nothing to
    undo. A ROLLBACK would make psycopg forget every statement it prepared on the connection
    (DEALLOCATE ALL), and the next purchase would parse and plan them all again. A request that
    failed with an unhandled error rolls back."""
    session = db.session()
    if not session.in_transaction():
        return
    if exc is None:
        session.commit()
    else:
        session.rollback()
