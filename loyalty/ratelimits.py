"""Rate limits (Flask-Limiter): what is counted, per what, and where the counts live.

Every request to a route is counted per client (its API key; a request without one, per
address) and per address; card, member and voucher lookups also against a stricter limit per
client (enumeration), the public feedback link against one per address, and the Stripe
webhook's failed signature checks against one per address (only failures are counted, so
Stripe's own deliveries never use it up). The limits are configuration (`LOYALTY_RATE_LIMIT_*`,
read per request from the app's config); above one: 429 `rate_limited` with `Retry-After` and
Flask-Limiter's `X-RateLimit-Limit`, `-Remaining` and `-Reset` headers.

Counts live in the process's memory (one app server: no round trip), or in the Redis of
`LOYALTY_REDIS_URL` so that every app server shares them. If that Redis fails, each process
counts in its own memory until Redis answers again (logged): a till must keep selling.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Flask, current_app, request
from flask.wrappers import Response
from flask_limiter import ApplicationLimit, Limiter
from limits import parse_many
from limits.storage import Storage
from limits.strategies import RateLimiter

from loyalty.config import RATE_LIMIT_DEFAULTS

_READ = frozenset({"GET", "HEAD"})
#: The lookups an enumeration would walk through, by endpoint: the methods that look up.
LOOKUPS: dict[str, frozenset[str]] = {
    "cards.CardByNumber": _READ,
    "members.MemberById": _READ,
    "members.Members": _READ,  # the search in the query string
    "members.MemberSearch": frozenset({"POST"}),  # the search in a body
    "vouchers.VoucherByCode": _READ,
}
#: The receipt's feedback link (no key); pages under /f/ count against the same limit.
FEEDBACK_ENDPOINTS = frozenset({"feedback.FeedbackByToken"})
FEEDBACK_PAGES = "/f/"
WEBHOOK_ENDPOINTS = frozenset({"stripe.StripeWebhook"})
#: Never limited: probes, the metrics scrape, and the CORS preflight (it carries no key).
UNLIMITED_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "prometheus.metrics", "static"})

SETTINGS = tuple(RATE_LIMIT_DEFAULTS)  # the LOYALTY_RATE_LIMIT_* names

_APP_LIMITER = "loyalty.rate_limiter"  # app.extensions: this app's strategy over its storage


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


def _setting(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


def _not_lookup() -> bool:
    return request.method not in LOOKUPS.get(request.endpoint or "", ())


def _not_feedback() -> bool:
    return request.endpoint not in FEEDBACK_ENDPOINTS and not request.path.startswith(
        FEEDBACK_PAGES
    )


def _not_webhook() -> bool:
    return request.endpoint not in WEBHOOK_ENDPOINTS


def _signature_failed(response: Response) -> bool:
    """The webhook refused the signature (400 `invalid_signature`)."""
    return response.status_code == 400 and b'"invalid_signature"' in response.get_data()


def _limits() -> list[str | Callable[[], str] | ApplicationLimit]:
    """The limits, most specific first (the one the RateLimit headers describe, unless another
    is exceeded). Each is shared by the routes it covers: one count per client or address."""
    return [
        ApplicationLimit(
            limit_provider=_setting("LOYALTY_RATE_LIMIT_LOOKUPS"),
            key_function=client,
            scope="lookups",
            exempt_when=_not_lookup,
            error_message="Too many card, member and voucher lookups with this API key.",
        ),
        ApplicationLimit(
            limit_provider=_setting("LOYALTY_RATE_LIMIT_FEEDBACK"),
            key_function=address,
            scope="feedback",
            exempt_when=_not_feedback,
            error_message="Too much feedback from this address.",
        ),
        ApplicationLimit(
            limit_provider=_setting("LOYALTY_RATE_LIMIT_WEBHOOK_FAILURES"),
            key_function=address,
            scope="webhook-failures",
            exempt_when=_not_webhook,
            deduct_when=_signature_failed,
            error_message="Too many webhook calls with a bad signature from this address.",
        ),
        ApplicationLimit(
            limit_provider=_setting("LOYALTY_RATE_LIMIT_PER_KEY"),
            key_function=client,
            scope="client",
            error_message="Too many requests with this API key.",
        ),
        ApplicationLimit(
            limit_provider=_setting("LOYALTY_RATE_LIMIT_PER_IP"),
            key_function=address,
            scope="address",
            error_message="Too many requests from this address.",
        ),
    ]


class AppLimiter(Limiter):
    """Flask-Limiter's `Limiter`, created once (`loyalty.extensions.limiter`) for every app
    `create_app` makes, each app counting in its own storage: Flask-Limiter keeps one storage
    per Limiter, which the last `init_app` would replace for all of them."""

    def __init__(self) -> None:
        super().__init__(
            client,
            application_limits=_limits(),
            headers_enabled=True,
            strategy="fixed-window",  # one counter per window: one INCR on Redis
            # Redis unreachable: count in this process's memory until it answers again
            # (checked again after 1, 2, 4 … seconds), and never answer 500 for a count
            in_memory_fallback_enabled=True,
            swallow_errors=True,
        )
        self.request_filter(_unlimited)

    def init_app(self, app: Flask) -> None:
        """Counts in memory, or in LOYALTY_REDIS_URL's Redis under LOYALTY_RATE_LIMIT_PREFIX.
        An unreadable limit stops the start (ValueError)."""
        config = app.config
        for name in SETTINGS:
            if not parse_many(config[name]):
                raise ValueError(f"{name} is not a rate limit: {config[name]!r}")
        redis_url = config.get("LOYALTY_REDIS_URL")
        config["RATELIMIT_STORAGE_URI"] = redis_url or "memory://"
        self._storage_options = (
            {
                "key_prefix": f"{config['LOYALTY_RATE_LIMIT_PREFIX']}:limits",
                "socket_timeout": 1,
                "socket_connect_timeout": 1,
            }
            if redis_url
            else {}
        )
        self._storage_dead = False  # the new app's storage is tried first
        super().init_app(app)
        app.extensions[_APP_LIMITER] = self._limiter

    @property
    def limiter(self) -> RateLimiter:
        if self._storage_dead and self._fallback_limiter is not None:
            return self._fallback_limiter
        return current_app.extensions[_APP_LIMITER]

    @property
    def storage(self) -> Storage:
        return self.limiter.storage


def _unlimited() -> bool:
    return request.method == "OPTIONS" or request.endpoint in UNLIMITED_ENDPOINTS
