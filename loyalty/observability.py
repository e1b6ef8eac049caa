"""Operations: one structured (JSON) log line per request, `X-Request-Id`, Prometheus metrics.

Logs. `logging_config()` is the `logging.config.dictConfig` of the service (gunicorn.conf.py
hands it to gunicorn): every record one JSON object on a line (python-json-logger), with the
`request_id` of the request it was written in. `init_app` adds, per request, one line on the
logger `loyalty.request`: `request_id`, `actor` (the API key's name, or a staff member's),
`route` (the URL rule, e.g. `/api/v1/members/<id:member_id>`: never the raw path nor the query
string, which may carry personal data), `method`, `status` and `duration_ms`.

Request ids. A client's `X-Request-Id` is kept when it is 1 to 128 of `A-Z a-z 0-9 . _ : -`
(so never an e-mail address or a phone number); otherwise a new one (uuid4, hex) is made. Every
response carries it, errors included.

Metrics (prometheus_client). Per request one counter increment (route, method, status) and one
histogram observation (route, method): routes are the app's URL rules (a request that matched
none counts as `<unmatched>`), methods the standard ones, so the label sets stay bounded.
Business counters (purchases recorded, points issued, redeemed, expired) are noted by the domain
on the session (`loyalty.domain.tally`) and added here after the transaction commits; a rolled
back one counts nothing. Job failures count by job name (Huey's error signal); the queue's depth
is read when `/metrics` is scraped. With several processes (gunicorn workers, the job worker) set
PROMETHEUS_MULTIPROC_DIR, the same for all of them: each process writes its counters there and
`/metrics` adds them up (gunicorn.conf.py sets it for gunicorn and cleans up after its workers).

`/metrics` needs no key; it answers only to clients in LOYALTY_METRICS_ALLOW (CIDRs,
comma-separated; default loopback) whose request did not come through a proxy (no
`Forwarded`/`X-Forwarded-For` header): to anyone else it is a 404, as if it were not there.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import event
from sqlalchemy.orm import Session

from loyalty.domain import tally

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"

request_log = logging.getLogger("loyalty.request")
_current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "loyalty_request_id", default=None
)

# --- metrics ---------------------------------------------------------------------------------
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # the counters below write there at once
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], mode=0o700, exist_ok=True)

REQUESTS = Counter(
    "loyalty_http_requests",
    "HTTP requests answered, by route (URL rule), method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "loyalty_http_request_duration_seconds",
    "Time from the request's start to its answer, by route (URL rule) and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BUSINESS = {
    tally.PURCHASES_RECORDED: Counter(
        "loyalty_purchases_recorded", "Purchases recorded (committed; repeats not counted)."
    ),
    tally.POINTS_ISSUED: Counter(
        "loyalty_points_issued", "Points earned by purchases (earn and bonus entries)."
    ),
    tally.POINTS_REDEEMED: Counter("loyalty_points_redeemed", "Points spent on rewards."),
    tally.POINTS_EXPIRED: Counter("loyalty_points_expired", "Points that expired."),
}
JOB_FAILURES = Counter(
    "loyalty_job_failures", "Background job runs that raised, by job name.", ["job"]
)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """The hot path's whole metrics cost: one counter increment, one histogram observation."""
    REQUESTS.labels(route, method, str(status)).inc()
    LATENCY.labels(route, method).observe(seconds)


def count_committed(session: Session) -> None:
    """After a COMMIT: what the transaction noted (`loyalty.domain.tally`) goes to the counters."""
    session.info.pop(_SAVED, None)
    for name, amount in tally.take(session).items():
        counter = BUSINESS.get(name)
        if counter is not None and amount > 0:
            counter.inc(amount)


_SAVED = "loyalty.tally.savepoints"


def remember_at_savepoint(session: Session, transaction: Any) -> None:
    """A savepoint begins: what the transaction noted so far, to go back to if it rolls back."""
    if transaction.nested:
        session.info.setdefault(_SAVED, {})[id(transaction)] = dict(session.info.get(tally.KEY, {}))


def forget_rolled_back(session: Session, previous_transaction: Any) -> None:
    """After a rollback() of the whole transaction, even one that had sent nothing to the
    database yet, what it noted is forgotten; after a savepoint's, what was noted within it."""
    if not previous_transaction.nested:
        tally.take(session)
        session.info.pop(_SAVED, None)
        return
    saved = session.info.get(_SAVED, {}).pop(id(previous_transaction), None)
    if saved is not None:
        session.info[tally.KEY] = saved


def listen_for_commits(session_factory: Any) -> None:
    """Count after every COMMIT of the app's sessions (requests and jobs alike), nothing of a
    transaction or a savepoint that rolled back."""
    for name, fn in (
        ("after_transaction_create", remember_at_savepoint),
        ("after_commit", count_committed),
        ("after_soft_rollback", forget_rolled_back),
    ):
        if not event.contains(session_factory, name, fn):
            event.listen(session_factory, name, fn)


def job_failed(_signal: str, task: Any, exc: BaseException | None = None) -> None:
    """Huey's SIGNAL_ERROR handler: a job run raised."""
    JOB_FAILURES.labels(getattr(task, "name", "unknown")).inc()


class QueueCollector:
    """The job queue's depth, read at scrape time (a failing queue reads as up = 0)."""

    def __init__(self, huey: Any) -> None:
        self.huey = huey

    def collect(self) -> Iterable[Any]:
        up = GaugeMetricFamily("loyalty_job_queue_up", "1 when the job queue could be read.")
        depth = GaugeMetricFamily("loyalty_job_queue_depth", "Jobs waiting in the queue.")
        try:
            depth.add_metric([], float(self.huey.pending_count()))
            up.add_metric([], 1.0)
        except Exception:  # the queue's storage is down: say so, do not fail the scrape
            up.add_metric([], 0.0)
            return [up]
        return [up, depth]


def exposition(huey: Any) -> bytes:
    """The metrics text: this process's (or, with PROMETHEUS_MULTIPROC_DIR, every process's)
    counters, and the queue's depth."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    queue = CollectorRegistry()
    queue.register(QueueCollector(huey))
    return generate_latest(registry) + generate_latest(queue)


def parse_networks(raw: str | Iterable[str] | None) -> tuple[Any, ...]:
    """LOYALTY_METRICS_ALLOW: CIDRs, comma-separated (or a list); a bad one fails the start."""
    items = raw.split(",") if isinstance(raw, str) else list(raw or ())
    try:
        return tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip())
    except ValueError as exc:
        raise ValueError(f"LOYALTY_METRICS_ALLOW: {exc}") from None


def _may_scrape(networks: tuple[Any, ...]) -> bool:
    if "Forwarded" in request.headers or "X-Forwarded-For" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in networks)


metrics_bp = Blueprint("prometheus", __name__)


@metrics_bp.get("/metrics")
def metrics() -> Response:
    if not _may_scrape(current_app.extensions["loyalty_metrics_allow"]):
        abort(404)
    from loyalty.jobs import jobs_of  # the jobs import the domain; keep this module light

    body = exposition(jobs_of(current_app).huey)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


# --- requests --------------------------------------------------------------------------------
def request_id_from(header: str | None) -> str:
    """The client's request id if it is sane (length and characters bounded), else a new one."""
    if header is not None and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def _start() -> None:
    g.loyalty_started = time.perf_counter()
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    _current_request_id.set(g.request_id)


def _actor_name() -> str | None:
    """The caller as the request log names it: the API key's name, or the staff member's."""
    for attribute in ("client", "staff"):
        who = g.get(attribute)
        if who is not None:
            return getattr(who, "name", None)
    return None


def _finish(response: Response) -> Response:
    if "request_id" not in g:  # an earlier before_request answered before ours ran
        _start()
    seconds = time.perf_counter() - g.loyalty_started
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    method = request.method if request.method in _METHODS else "OTHER"
    response.headers[REQUEST_ID_HEADER] = g.request_id
    observe_request(route, method, response.status_code, seconds)
    request_log.info(
        "request",
        extra={
            "request_id": g.request_id,
            "actor": _actor_name(),
            "route": route,
            "method": method,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
        },
    )
    return response


def _forget_request_id(_exc: BaseException | None) -> None:
    _current_request_id.set(None)


def init_app(app: Flask, session_factory: Any, huey: Any) -> None:
    """Request ids, the request log line and metrics on every response; `/metrics`; the
    business counters after each commit of `session_factory`; job failures of `huey`."""
    app.extensions["loyalty_metrics_allow"] = parse_networks(app.config["LOYALTY_METRICS_ALLOW"])
    app.before_request_funcs.setdefault(None, []).insert(0, _start)  # first: others may answer
    app.after_request(_finish)
    app.teardown_request(_forget_request_id)
    app.register_blueprint(metrics_bp)
    listen_for_commits(session_factory)
    keep_rows_out_of_logs()
    from huey.signals import SIGNAL_ERROR

    huey.signal(SIGNAL_ERROR)(job_failed)


# --- logging ---------------------------------------------------------------------------------
class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record written while it is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current_request_id.get()
        return True


class NoResultRows(logging.Filter):
    """SQLAlchemy's engine logger writes every result row at DEBUG (names, e-mail addresses,
    phone numbers): those records are dropped, whatever level the logger is set to. Statements
    (INFO) still pass, their parameters hidden (the engine's `hide_parameters`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def keep_rows_out_of_logs() -> None:
    logger = logging.getLogger("sqlalchemy.engine.Engine")
    if not any(isinstance(f, NoResultRows) for f in logger.filters):
        logger.addFilter(NoResultRows())


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """The dictConfig of the service: JSON lines on stderr, gunicorn's error log included."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["request_id"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s",
                "rename_fields": {"levelname": "level", "name": "logger"},
                "timestamp": True,
            }
        },
        "handlers": {"json": handler, "console": handler, "error_console": handler},
        "root": {"level": level, "handlers": ["json"]},
        # gunicorn's access log (off unless --access-logfile; its format in gunicorn.conf.py)
        # keeps the handler gunicorn gives it
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["json"], "propagate": False},
        },
    }
