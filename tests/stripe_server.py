"""localstripe on loopback, for the Stripe tests (the real `stripe` library talks to it)."""

from __future__ import annotations

import asyncio
import re
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
    from localstripe import server as localstripe_server
    from localstripe.errors import UserError
    from localstripe.server import app as localstripe_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _teach_localstripe_coupon_fields() -> None:
    """localstripe's Coupon refuses `max_redemptions` and `redeem_by`, which real Stripe takes and
    we send; keep them on the fake coupon instead of refusing the request. A coupon id in use
    is refused as Stripe refuses it (400, code `resource_already_exists`), not with localstripe's
    bare 409."""
    if getattr(resources.Coupon, "_loyalty_patched", False):
        return
    original = resources.Coupon.__init__

    def __init__(self, max_redemptions=None, redeem_by=None, **kwargs):  # type: ignore[no-untyped-def]
        if f"coupon:{kwargs.get('id')}" in resources.store:
            raise UserError(
                400, "Coupon already exists.", {"code": "resource_already_exists", "param": "id"}
            )
        original(self, **kwargs)
        self.max_redemptions = max_redemptions
        self.redeem_by = redeem_by

    resources.Coupon.__init__ = __init__
    resources.Coupon._loyalty_patched = True


class PromotionCode(resources.StripeObject):  # type: ignore[misc]
    """localstripe has no promotion codes: this one follows Stripe's documented API (version
    2026-10-28 of the `stripe` library): `POST /v1/promotion_codes` with `promotion[type]=coupon`
    and `promotion[coupon]`, a customer-facing `code` (letters, digits, dashes) unique among the
    active codes regardless of case, `active`, `max_redemptions`, `expires_at` (not after the
    coupon's `redeem_by`), `restrictions`, `metadata`; retrieve, update (`active`, `metadata`) and
    list (filtered by `code`, `active`, `coupon`)."""

    object = "promotion_code"
    _id_prefix = "promo_"

    def __init__(  # type: ignore[no-untyped-def]
        self,
        promotion=None,
        code=None,
        active=None,
        max_redemptions=None,
        expires_at=None,
        restrictions=None,
        metadata=None,
        customer=None,
        **kwargs,
    ):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        coupon = _coupon_of(promotion)
        active = resources.try_convert_to_bool(active) if active is not None else True
        max_redemptions = resources.try_convert_to_int(max_redemptions)
        expires_at = resources.try_convert_to_int(expires_at)
        code = code if code is not None else resources.random_id(8).upper()
        if not (isinstance(code, str) and re.fullmatch(r"[A-Za-z0-9-]{1,500}", code)):
            raise UserError(400, "Invalid code")
        if max_redemptions is not None and not (
            isinstance(max_redemptions, int) and max_redemptions > 0
        ):
            raise UserError(400, "Invalid max_redemptions")
        redeem_by = resources.try_convert_to_int(coupon.redeem_by)
        if expires_at is not None and redeem_by is not None and expires_at > redeem_by:
            raise UserError(400, "expires_at cannot be after the coupon's redeem_by")
        if active and _active_code_taken(code):
            raise UserError(
                400,
                f"An active promotion code with `code: {code}` already exists.",
                {"code": "resource_already_exists", "param": "code"},
            )
        super().__init__()
        self.promotion = {"type": "coupon", "coupon": coupon.id}
        self.code = code
        self.active = bool(active)
        self.max_redemptions = max_redemptions
        self.expires_at = expires_at
        self.restrictions = _restrictions(restrictions)
        self.metadata = metadata or {}
        self.customer = customer
        self.times_redeemed = 0

    @classmethod
    def _api_update(cls, id, active=None, metadata=None, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        obj = cls._api_retrieve(id)
        if active is not None:
            active = resources.try_convert_to_bool(active)
            if not isinstance(active, bool):
                raise UserError(400, "Invalid active")
            if active and not obj.active and _active_code_taken(obj.code):
                raise UserError(400, "An active promotion code with this code exists.")
            obj.active = active
        if metadata:
            obj.metadata = {**obj.metadata, **metadata}
        return obj

    @classmethod
    def _api_list_all(  # type: ignore[no-untyped-def]
        cls, url, code=None, active=None, coupon=None, limit=None, starting_after=None, **kwargs
    ):
        if kwargs:
            raise UserError(400, "Unexpected " + ", ".join(kwargs))
        li = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        active = resources.try_convert_to_bool(active)
        li._list = [
            p
            for p in li._list
            if (code is None or p.code.lower() == code.lower())
            and (active is None or p.active == active)
            and (coupon is None or p.promotion["coupon"] == coupon)
        ]
        return li


def _coupon_of(promotion):  # type: ignore[no-untyped-def]
    if not (isinstance(promotion, dict) and promotion.get("type") == "coupon"):
        raise UserError(400, "promotion[type] must be coupon")
    coupon = resources.store.get("coupon:" + str(promotion.get("coupon")))
    if coupon is None:
        raise UserError(400, f"No such coupon: '{promotion.get('coupon')}'")
    return coupon


def _active_code_taken(code: str) -> bool:
    return any(
        key.startswith("promotion_code:") and obj.active and obj.code.lower() == code.lower()
        for key, obj in resources.store.items()
    )


def _restrictions(raw):  # type: ignore[no-untyped-def]
    raw = raw or {}
    return {
        "first_time_transaction": resources.try_convert_to_bool(
            raw.get("first_time_transaction", False)
        ),
        "minimum_amount": resources.try_convert_to_int(raw.get("minimum_amount")),
        "minimum_amount_currency": raw.get("minimum_amount_currency"),
    }


def _teach_localstripe_promotion_codes() -> None:
    """Routes for PromotionCode, added before localstripe's app first starts (its router is then
    frozen)."""
    if getattr(localstripe_server, "_loyalty_promotion_codes", False):
        return
    url = "/v1/promotion_codes"
    with warnings.catch_warnings():  # localstripe's handlers are plain functions, as above
        warnings.simplefilter("ignore", DeprecationWarning)
        for method, path, make in (
            ("POST", url, localstripe_server.api_create),
            ("GET", url + "/{id}", localstripe_server.api_retrieve),
            ("POST", url + "/{id}", localstripe_server.api_update),
            ("GET", url, localstripe_server.api_list_all),
        ):
            localstripe_app.router.add_route(method, path, make(PromotionCode, path))
    localstripe_server._loyalty_promotion_codes = True


@contextmanager
def localstripe() -> Iterator[str]:
    """Start localstripe on 127.0.0.1 (it binds all interfaces when run as a program)."""
    _teach_localstripe_coupon_fields()
    _teach_localstripe_promotion_codes()
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
