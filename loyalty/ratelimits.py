"""Rate limits (the `limits` library): what is counted, per what, and where the counts live.

Every request to a route is counted per client (its API key; a request without one, per
address) and per address; card, member and voucher lookups also against a stricter limit per
client (enumeration), the public feedback link (and the answers posted to its page) against
one per address, the Stripe webhook's failed signature checks against one per address (only
failures are counted, so Stripe's own deliveries never use it up), and the staff back
office's sign-in tries (its form's POSTs) against one per address. The limits are
configuration (`LOYALTY_RATE_LIMIT_*`), parsed once when the app is made; above one: 429
`rate_limited` with `Retry-After` and the `X-RateLimit-Limit`, `-Remaining` and `-Reset`
headers. A counted answer carries the limit and what remains of it (from the count just
made: no further storage call).

Counts live in the process's memory (one app server: no round trip), or in the Redis of
`LOYALTY_REDIS_URL` so that every app server shares them. If that Redis fails, each process
counts in its own memory until Redis answers again (logged): a till must keep selling.

Built on `limits` (fixed windows) rather than Flask-Limiter, which re-parsed every limit,
evaluated every exemption and wrote the headers on every request: ~350-450 µs of CPU per request,
a quarter of a purchase (docs/design.md).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from flask import Flask, current_app, g, request
from flask.wrappers import Response
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from loyalty.config import RATE_LIMIT_DEFAULTS
from loyalty.errors import RateLimited

log = logging.getLogger(__name__)

_READ = frozenset({"GET", "HEAD"})
#: The lookups an enumeration would walk through, by endpoint: the methods that look up.
LOOKUPS: dict[str, frozenset[str]] = {
    "cards.CardByNumber": _READ,
    "members.MemberById": _READ,
    "members.Members": _READ,  # the search in the query string
    "members.MemberSearch": frozenset({"POST"}),  # the search in a body
    "vouchers.VoucherByCode": _READ,
}
#: The receipt's feedback link (no key); the answers posted to pages under /f/ count against
#: the same limit (reading a page does not: one answer is GET, POST, GET of the thank-you).
FEEDBACK_ENDPOINTS = frozenset({"feedback.FeedbackByToken"})
FEEDBACK_PAGES = "/f/"
WEBHOOK_ENDPOINTS = frozenset({"stripe.StripeWebhook"})
#: The staff back office's sign-in form (its POSTs: tries of a password), per address.
SIGN_IN_ENDPOINTS = frozenset({"staff.sign_in"})
#: Never limited: probes, the metrics scrape, the pages' stylesheet and scripts, and the CORS
#: preflight (it carries no key).
UNLIMITED_ENDPOINTS = frozenset(
    {"health.healthz", "health.readyz", "prometheus.metrics", "static"}
    | {"site.static", "site.vendor"}
)

SETTINGS = tuple(RATE_LIMIT_DEFAULTS)  # the LOYALTY_RATE_LIMIT_* names

_EXTENSION = "loyalty.rate_limits"  # app.extensions: this app's AppRateLimits
_NOTED = "_rate_limit"  # flask.g: what the after_request hook adds to the answer
MAX_BACKOFF = 32.0  # seconds between two tries of a failed Redis, at most


def address() -> str:
    """The client's address (behind LOYALTY_PROXY_HOPS proxies: the one they were given)."""
    return request.remote_addr or "unknown"


def client() -> str:
    """The API key (a digest: keys never reach the storage), else the address."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return "ip:" + address()
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]


class Rule(NamedTuple):
    """One parsed limit: what it allows, its count's name, whom it counts, what a 429 says."""

    item: RateLimitItem
    scope: str
    per_client: bool  # counted per client(), else per address()
    message: str
    failures_only: bool = False  # the webhook's: counted when the signature failed


#: The limits, most specific first (the one a counted answer's headers describe, unless another
#: is exceeded): setting, scope, per client, the 429's detail.
_LIMITS = (
    (
        "LOYALTY_RATE_LIMIT_LOOKUPS",
        "lookups",
        True,
        "Too many card, member and voucher lookups with this API key.",
    ),
    ("LOYALTY_RATE_LIMIT_FEEDBACK", "feedback", False, "Too much feedback from this address."),
    (
        "LOYALTY_RATE_LIMIT_WEBHOOK_FAILURES",
        "webhook-failures",
        False,
        "Too many webhook calls with a bad signature from this address.",
    ),
    (
        "LOYALTY_RATE_LIMIT_STAFF_SIGN_IN",
        "staff-sign-in",
        False,
        "Too many sign-in attempts from this address.",
    ),
    ("LOYALTY_RATE_LIMIT_PER_KEY", "client", True, "Too many requests with this API key."),
    ("LOYALTY_RATE_LIMIT_PER_IP", "address", False, "Too many requests from this address."),
)


def parse_rules(config: Mapping[str, Any]) -> dict[str, tuple[Rule, ...]]:
    """The configured limits by scope, parsed once. An unreadable one: ValueError."""
    rules = {}
    for name, scope, per_client, message in _LIMITS:
        try:
            items = sorted(parse_many(config[name]))  # the shortest window first
        except ValueError:
            items = []
        if not items:
            raise ValueError(f"{name} is not a rate limit: {config[name]!r}")
        failures = scope == "webhook-failures"
        rules[scope] = tuple(Rule(i, scope, per_client, message, failures) for i in items)
    return rules


def _scopes(endpoint: str, method: str, feedback_page: bool) -> list[str]:
    """The limits a request to `endpoint` with `method` counts against, most specific first."""
    scopes = []
    if method in LOOKUPS.get(endpoint, ()):
        scopes.append("lookups")
    if endpoint in FEEDBACK_ENDPOINTS or (feedback_page and method == "POST"):
        scopes.append("feedback")
    if endpoint in WEBHOOK_ENDPOINTS:
        scopes.append("webhook-failures")
    if endpoint in SIGN_IN_ENDPOINTS and method == "POST":
        scopes.append("staff-sign-in")
    return [*scopes, "client", "address"]


class ProcessMemory(MemoryStorage):
    """limits' MemoryStorage without its timer thread. MemoryStorage starts a threading.Timer
    (10 ms) on a count whenever none is alive, to drop expired counts: under load a thread
    every 10 ms (~57 µs of CPU each), each sweeping every key (0.75 ms for 10,000 addresses:
    7.5% of a core). Here an expired count reads as 0 and the sweep runs in line, at most once
    a second."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            if self.expirations.get(key, 0) <= now:  # a new window
                self.storage[key] = 0
                self.expirations[key] = now + expiry
            count = self.storage[key] + amount
            self.storage[key] = count
        return count

    def get(self, key: str) -> int:
        if self.expirations.get(key, 0) <= time.time():
            return 0
        return self.storage.get(key, 0)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + 1.0
        for key in [key for key, expiry in self.expirations.items() if expiry <= now]:
            del self.expirations[key]
            self.storage.pop(key, None)


def _redis(url: str, prefix: str) -> Storage:
    """limits' RedisStorage at `url`, its keys under `prefix`; a call waits 1 s at most."""
    storage = storage_from_string(
        url, key_prefix=f"{prefix}:limits", socket_timeout=1, socket_connect_timeout=1
    )
    if not isinstance(storage, Storage):  # an async+redis:// URL: the asyncio flavour
        raise ValueError(f"LOYALTY_REDIS_URL is not a Redis the app can count in: {url!r}")
    return storage


class AppRateLimits:
    """One app's limits, parsed once, and its counts: in memory, or in Redis with a memory
    fallback while Redis fails (retried after 1, 2, 4 … 32 seconds)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.rules = parse_rules(config)
        self._by_route: dict[tuple[str, str, bool], tuple[Rule, ...]] = {}
        redis_url = config.get("LOYALTY_REDIS_URL")
        self.primary = (
            _redis(redis_url, config["LOYALTY_RATE_LIMIT_PREFIX"]) if redis_url else ProcessMemory()
        )
        self._fallback: Storage | None = None
        self._retry_at = 0.0  # while the primary is down: when to try it again
        self._backoff = 1.0

    @property
    def storage(self) -> Storage:
        """Where counts go now: the primary storage, or the fallback while it is down."""
        if self._fallback is None:
            return self.primary
        now = time.monotonic()
        if now >= self._retry_at:
            if self.primary.check():
                log.info("rate limit storage recovered")
                self._fallback, self._backoff = None, 1.0
                return self.primary
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            self._retry_at = now + self._backoff
        return self._fallback

    def fall_back(self, exc: Exception) -> bool:
        """The storage failed: count in this process's memory. False if that was it already."""
        if self._fallback is not None or isinstance(self.primary, MemoryStorage):
            log.exception("rate limit count failed", exc_info=exc)
            return False
        log.warning("Rate limit storage unreachable (%r): falling back to in-memory storage", exc)
        self._fallback = ProcessMemory()
        self._retry_at = time.monotonic() + self._backoff
        return True

    def rules_for(self, endpoint: str, method: str, path: str) -> tuple[Rule, ...]:
        """The rules a request counts against (one list per route and method)."""
        route = (endpoint, method, path.startswith(FEEDBACK_PAGES))
        rules = self._by_route.get(route)
        if rules is None:
            scopes = _scopes(*route)
            rules = self._by_route[route] = tuple(r for s in scopes for r in self.rules[s])
        return rules

    def check(self) -> None:
        """before_request: count the request against its limits (429: RateLimited)."""
        endpoint = request.endpoint
        if not endpoint or endpoint in UNLIMITED_ENDPOINTS or request.method == "OPTIONS":
            return
        rules = self.rules_for(endpoint, request.method, request.path)
        try:
            _count(self.storage, rules)
        except RateLimited:
            raise
        except Exception as exc:  # the storage failed: never a 500 for a count
            if self.fall_back(exc):
                _count(self.storage, rules)

    def finish(self, response: Response) -> Response:
        """after_request: count a failed webhook signature; the headers noted for the answer."""
        noted: _Noted | None = g.pop(_NOTED, None)
        if noted is None:
            return response
        headers = noted.headers
        if noted.failure is not None and _signature_failed(response):
            try:
                headers = _count_failure(self.storage, *noted.failure)
            except Exception as exc:
                if self.fall_back(exc):
                    headers = _count_failure(self.storage, *noted.failure)
        response.headers.update(headers)
        return response


class _Noted(NamedTuple):
    headers: dict[str, str]
    failure: tuple[Rule, str] | None  # the webhook's rule and key, counted if the check fails


def _count(storage: Storage, rules: tuple[Rule, ...]) -> None:
    """Count against each rule in turn (fixed windows: one INCR each), stopping at the first
    exceeded, which raises RateLimited. The answer gets the first rule's state."""
    identities: dict[bool, str] = {}
    headers: dict[str, str] | None = None
    failure = None
    for rule in rules:
        who = identities.get(rule.per_client)
        if who is None:
            who = identities[rule.per_client] = client() if rule.per_client else address()
        key = rule.item.key_for(who, rule.scope)
        if rule.failures_only:  # tested now, counted after the answer if the check failed
            count, failure = storage.get(key) + 1, (rule, key)
        else:
            count = storage.incr(key, rule.item.get_expiry())
        if count > rule.item.amount:
            setattr(g, _NOTED, _Noted(_exceeded(storage, rule, who), None))
            raise RateLimited(rule.message)
        if headers is None:
            remaining = rule.item.amount - (count - 1 if rule.failures_only else count)
            headers = _state(rule.item, remaining)
    setattr(g, _NOTED, _Noted(headers or {}, failure))


def _count_failure(storage: Storage, rule: Rule, key: str) -> dict[str, str]:
    count = storage.incr(key, rule.item.get_expiry())
    return _state(rule.item, max(0, rule.item.amount - count))


def _state(item: RateLimitItem, remaining: int) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(item.amount), "X-RateLimit-Remaining": str(remaining)}


def _exceeded(storage: Storage, rule: Rule, who: str) -> dict[str, str]:
    """A 429's headers: the exceeded limit's window (when it ends; seconds until then)."""
    reset, remaining = FixedWindowRateLimiter(storage).get_window_stats(rule.item, who, rule.scope)
    return {
        "Retry-After": str(max(1, math.ceil(reset - time.time()))),
        "X-RateLimit-Limit": str(rule.item.amount),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(math.ceil(reset)),
    }


def _signature_failed(response: Response) -> bool:
    """The webhook refused the signature (400 `invalid_signature`)."""
    return response.status_code == 400 and b'"invalid_signature"' in response.get_data()


class AppLimiter:
    """The rate limits of every app `create_app` makes (`loyalty.extensions.limiter`), each
    app counting in its own storage (two apps on one Redis share its counts)."""

    def init_app(self, app: Flask) -> None:
        """Parse the limits (an unreadable one stops the start: ValueError) and, unless
        RATELIMIT_ENABLED is False, count every request."""
        limits = app.extensions[_EXTENSION] = AppRateLimits(app.config)
        if app.config.get("RATELIMIT_ENABLED", True):
            app.before_request(limits.check)
            app.after_request(limits.finish)

    @property
    def storage(self) -> Storage:
        """The current app's storage now (its memory fallback while Redis fails)."""
        return self.limits.storage

    @property
    def limits(self) -> AppRateLimits:
        return current_app.extensions[_EXTENSION]
