"""localstripe on loopback, for the Stripe tests (the real `stripe` library talks to it)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

with warnings.catch_warnings():  # localstripe registers plain functions as aiohttp handlers
    warnings.simplefilter("ignore", DeprecationWarning)
    from localstripe import resources
    from localstripe.server import app as localstripe_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _teach_localstripe_coupon_fields() -> None:
    """localstripe's Coupon refuses `max_redemptions` and `redeem_by`, which real Stripe takes and
    we send; keep them on the fake coupon instead of refusing the request."""
    if getattr(resources.Coupon, "_loyalty_patched", False):
        return
    original = resources.Coupon.__init__

    def __init__(self, max_redemptions=None, redeem_by=None, **kwargs):  # type: ignore[no-untyped-def]
        original(self, **kwargs)
        self.max_redemptions = max_redemptions
        self.redeem_by = redeem_by

    resources.Coupon.__init__ = __init__
    resources.Coupon._loyalty_patched = True


@contextmanager
def localstripe() -> Iterator[str]:
    """Start localstripe on 127.0.0.1 (it binds all interfaces when run as a program)."""
    _teach_localstripe_coupon_fields()
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(localstripe_app, access_log=None)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def clear(url: str) -> None:
    urllib.request.urlopen(
        urllib.request.Request(f"{url}/_config/data", method="DELETE"), timeout=5
    )
