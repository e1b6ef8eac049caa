"""Configuration, read from the environment once, in one place."""

from __future__ import annotations

import os
import secrets
from dataclasses import fields
from datetime import date
from pathlib import Path
from typing import Any

from loyalty.domain.cards import parse_prefixes
from loyalty.domain.context import Limits


def _database_url(instance_path: str) -> str:
    """The SQLAlchemy URL from DATABASE_URL; default: a SQLite file under instance/.

    `postgres://` and `postgresql://` URLs are pointed at the psycopg 3 driver.
    """
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{Path(instance_path) / 'loyalty.sqlite3'}"
    return _psycopg(url)


def _psycopg(url: str) -> str:
    """`postgres://` and `postgresql://` URLs pointed at the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _secret_key(instance_path: str) -> str:
    """SECRET_KEY from the environment; else a random key kept in `instance/secret_key`, made once
    (0600) and shared by every process on this machine. It signs the receipts' feedback tokens, so
    it must never be a value anyone can read in the source. Several hosts behind one database
    must share one SECRET_KEY (set it in the environment)."""
    key = os.environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:  # atomic: of two processes starting at once, the first link wins, both read it
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _limit_settings() -> dict[str, int]:
    """The ceilings on the liability one request may add (domain.context.Limits: above one, 422
    limit_exceeded), each from its LOYALTY_MAX_* variable, else the default there:
    LOYALTY_MAX_PURCHASE_AMOUNT (minor units), LOYALTY_MAX_ADJUSTMENT_POINTS,
    LOYALTY_MAX_GOODWILL_AMOUNT (minor units), LOYALTY_MAX_GOODWILL_PERCENT."""
    defaults = Limits()
    return {
        Limits.setting(f.name): _int(Limits.setting(f.name), getattr(defaults, f.name))
        for f in fields(Limits)
    }


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


#: Configured date bounds must leave room for the metrics' arithmetic (a period before the
#: queried one, a month after it) inside what a date can hold.
_DATE_LIMITS = (date(1900, 1, 1), date(9000, 12, 31))


def _date_bounds() -> tuple[date, date]:
    """LOYALTY_MIN_DATE, LOYALTY_MAX_DATE (YYYY-MM-DD): the days a programme's dates may fall
    on (purchases, returns, reward windows, metrics queries). Checked here, at start-up."""
    first = date.fromisoformat(os.environ.get("LOYALTY_MIN_DATE") or "2000-01-01")
    last = date.fromisoformat(os.environ.get("LOYALTY_MAX_DATE") or "2100-12-31")
    if not _DATE_LIMITS[0] <= first < last <= _DATE_LIMITS[1]:
        raise ValueError(
            "LOYALTY_MIN_DATE must come before LOYALTY_MAX_DATE, both from "
            f"{_DATE_LIMITS[0]} to {_DATE_LIMITS[1]}."
        )
    return first, last


def _swagger_ui_dir() -> str:
    """The Swagger UI files /api/v1/docs serves: the pinned npm package swagger-ui-dist, which
    `make install` (make node) puts in node_modules/; or LOYALTY_SWAGGER_UI_DIR."""
    default = Path(__file__).resolve().parent.parent / "node_modules" / "swagger-ui-dist"
    return os.environ.get("LOYALTY_SWAGGER_UI_DIR") or str(default)


def _node_modules_dir() -> str:
    """Where the pages' npm files are (htmx): `make node` puts them in node_modules/; or
    LOYALTY_NODE_MODULES_DIR."""
    default = Path(__file__).resolve().parent.parent / "node_modules"
    return os.environ.get("LOYALTY_NODE_MODULES_DIR") or str(default)


def _public_url() -> str:
    """LOYALTY_PUBLIC_URL: where customers reach this server (the receipts' feedback links and
    their QR codes), without a trailing slash."""
    url = (os.environ.get("LOYALTY_PUBLIC_URL") or "http://127.0.0.1:5000").strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"LOYALTY_PUBLIC_URL must start with http:// or https://: {url!r}")
    return url


#: Rate limits (the `limits` library's strings: "600/minute", "10/second;500/hour"), counted in each
#: process's memory, or in LOYALTY_REDIS_URL's Redis (keys under LOYALTY_RATE_LIMIT_PREFIX) so
#: that every app server shares them. An unreadable one stops the start.
RATE_LIMIT_DEFAULTS = {
    "LOYALTY_RATE_LIMIT_PER_KEY": "600/minute",  # every request of one API key
    "LOYALTY_RATE_LIMIT_PER_IP": "1200/minute",  # every request from one address
    "LOYALTY_RATE_LIMIT_LOOKUPS": "60/minute",  # card, member, voucher lookups per key
    "LOYALTY_RATE_LIMIT_FEEDBACK": "10/minute",  # the public feedback link, per address
    "LOYALTY_RATE_LIMIT_WEBHOOK_FAILURES": "20/minute",  # bad Stripe signatures, per address
    "LOYALTY_RATE_LIMIT_STAFF_SIGN_IN": "10/minute;50/hour",  # staff sign-in tries, per address
}


class Config:
    """Settings from the environment; `create_app(overrides)` may replace any of them."""

    def __init__(self, instance_path: str) -> None:
        self.SECRET_KEY = _secret_key(instance_path)
        self.SQLALCHEMY_DATABASE_URI = _database_url(instance_path)
        # pre-ping costs a round trip per request; without it a connection broken by a database
        # restart fails one request, after which the pool replaces its connections.
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {
            "pool_pre_ping": os.environ.get("LOYALTY_DB_PRE_PING", "0") == "1",
            # errors and SQL logs never show bound values (e-mails, phones): create_app keeps
            # this on whatever engine options are given
            "hide_parameters": True,
        }
        # The metrics (and the staff dashboard) read from this database when set: a PostgreSQL
        # streaming replica of the primary. Unreachable: 503 replica_unavailable, or the primary
        # with LOYALTY_READ_FALLBACK=1.
        read_url = os.environ.get("LOYALTY_READ_DATABASE_URL", "").strip()
        self.LOYALTY_READ_DATABASE_URL = _psycopg(read_url) if read_url else None
        self.LOYALTY_READ_FALLBACK = os.environ.get("LOYALTY_READ_FALLBACK", "0") == "1"
        # a statement on the replica longer than this is cancelled (503 or the fallback)
        self.LOYALTY_READ_STATEMENT_TIMEOUT_MS = _int("LOYALTY_READ_STATEMENT_TIMEOUT_MS", 20000)
        self.MAX_CONTENT_LENGTH = _int("LOYALTY_MAX_BODY_BYTES", 1024 * 1024)
        self.JSON_SORT_KEYS = False

        self._web()

        # Loyalty's own settings
        self.LOYALTY_CARD_PREFIX = os.environ.get("LOYALTY_CARD_PREFIX", "990")
        self.LOYALTY_CARD_LENGTH = _int("LOYALTY_CARD_LENGTH", 16)
        # pre-printed cards given to enrol or issue with: numbers starting with one of these
        # (comma-separated); unset: LOYALTY_CARD_PREFIX only. Checked here, at start-up.
        self.LOYALTY_CARD_PREFIXES = os.environ.get("LOYALTY_CARD_PREFIXES") or None
        parse_prefixes(self.LOYALTY_CARD_PREFIXES, self.LOYALTY_CARD_PREFIX)
        self.LOYALTY_PHONE_REGION = os.environ.get("LOYALTY_PHONE_REGION") or None
        self.LOYALTY_IDEMPOTENCY_TTL_HOURS = _int("LOYALTY_IDEMPOTENCY_TTL_HOURS", 48)
        self.LOYALTY_API_KEY_GRACE_HOURS = _int("LOYALTY_API_KEY_GRACE_HOURS", 24)  # rotation
        # the dates a programme can hold; a date or time outside them is refused (422)
        self.LOYALTY_MIN_DATE, self.LOYALTY_MAX_DATE = _date_bounds()
        # LOYALTY_MAX_PURCHASE_AMOUNT, _ADJUSTMENT_POINTS, _GOODWILL_AMOUNT, _GOODWILL_PERCENT
        for name, value in _limit_settings().items():
            setattr(self, name, value)

        self._services(instance_path)

    def _web(self) -> None:
        """The OpenAPI document and docs page, rate limits, proxies, CORS."""
        # flask-smorest / OpenAPI
        self.API_TITLE = "Loyalty"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.0.3"
        self.OPENAPI_URL_PREFIX = "/api/v1"
        self.OPENAPI_JSON_PATH = "openapi.json"
        self.OPENAPI_SWAGGER_UI_PATH = "docs"
        self.LOYALTY_SWAGGER_UI_DIR = _swagger_ui_dir()
        self.LOYALTY_NODE_MODULES_DIR = _node_modules_dir()

        # The pages (loyalty/web): their public address; cookies Secure when it is https (and
        # on any request that came over HTTPS)
        self.LOYALTY_PUBLIC_URL = _public_url()
        self.SESSION_COOKIE_SECURE = self.LOYALTY_PUBLIC_URL.startswith("https://")
        # the staff back office (/staff): a sign-in lasts this long
        self.LOYALTY_STAFF_SESSION_HOURS = _float("LOYALTY_STAFF_SESSION_HOURS", 8.0)
        # the dashboard's span: this many whole months before the current one
        self.LOYALTY_STAFF_DASHBOARD_MONTHS = _int("LOYALTY_STAFF_DASHBOARD_MONTHS", 12)
        if not 1 <= self.LOYALTY_STAFF_DASHBOARD_MONTHS <= 120:
            raise ValueError("LOYALTY_STAFF_DASHBOARD_MONTHS must be from 1 to 120.")

        # Rate limits (loyalty/ratelimits.py), each from its variable, else RATE_LIMIT_DEFAULTS
        for name, default in RATE_LIMIT_DEFAULTS.items():
            setattr(self, name, os.environ.get(name) or default)
        self.LOYALTY_RATE_LIMIT_PREFIX = os.environ.get("LOYALTY_RATE_LIMIT_PREFIX") or "loyalty"
        # proxies in front of the app whose X-Forwarded-For is trusted (the per-IP limits)
        self.LOYALTY_PROXY_HOPS = _int("LOYALTY_PROXY_HOPS", 0)
        # browser origins allowed to call the API (CORS), comma-separated; none by default
        self.LOYALTY_CORS_ORIGINS = [
            o.strip() for o in os.environ.get("LOYALTY_CORS_ORIGINS", "").split(",") if o.strip()
        ]

    def _services(self, instance_path: str) -> None:
        """Stripe, the background jobs, the operations endpoints."""
        # Stripe: off unless STRIPE_API_KEY is set; STRIPE_API_BASE points tests at localstripe.
        self.STRIPE_API_KEY = os.environ.get("STRIPE_API_KEY") or None
        self.STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET") or None
        self.STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE") or None
        # every Stripe call: this timeout (seconds) and at most this many network retries
        self.STRIPE_TIMEOUT_SECONDS = _float("STRIPE_TIMEOUT_SECONDS", 10.0)
        self.STRIPE_MAX_NETWORK_RETRIES = _int("STRIPE_MAX_NETWORK_RETRIES", 1)

        # Background jobs (Huey): Redis when LOYALTY_REDIS_URL is set, else a SQLite file (0600)
        # in the instance folder; LOYALTY_JOBS_IMMEDIATE=1 runs each job at once in the process
        # that enqueues it (tests, debugging: no worker).
        self.LOYALTY_REDIS_URL = os.environ.get("LOYALTY_REDIS_URL") or None
        self.LOYALTY_JOBS_FILE = os.environ.get("LOYALTY_JOBS_FILE") or str(
            Path(instance_path) / "jobs.sqlite3"
        )
        self.LOYALTY_JOBS_NAME = os.environ.get("LOYALTY_JOBS_NAME") or "loyalty"
        self.LOYALTY_JOBS_IMMEDIATE = os.environ.get("LOYALTY_JOBS_IMMEDIATE", "0") == "1"
        self.LOYALTY_WORKER_THREADS = _int("LOYALTY_WORKER_THREADS", 2)
        self.LOYALTY_JOB_RETRIES = _int("LOYALTY_JOB_RETRIES", 3)
        self.LOYALTY_JOB_RETRY_DELAY_SECONDS = _int("LOYALTY_JOB_RETRY_DELAY_SECONDS", 30)
        self.LOYALTY_JOB_GRACE_SECONDS = _int("LOYALTY_JOB_GRACE_SECONDS", 60)
        self.LOYALTY_CAMPAIGN_BATCH = _int("LOYALTY_CAMPAIGN_BATCH", 500)
        self.LOYALTY_CAMPAIGN_MAX_ATTEMPTS = _int("LOYALTY_CAMPAIGN_MAX_ATTEMPTS", 5)

        # Operations (loyalty/observability.py): who may read /metrics (CIDRs, comma-separated;
        # empty: nobody); checked at start-up. The log level of the JSON logs is gunicorn's
        # (LOYALTY_LOG_LEVEL in gunicorn.conf.py).
        self.LOYALTY_METRICS_ALLOW = os.environ.get("LOYALTY_METRICS_ALLOW", "127.0.0.1/32,::1/128")
