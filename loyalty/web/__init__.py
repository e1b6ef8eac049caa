"""The pages: server-rendered (Jinja) over `loyalty/domain/`, like the API is.

`init_app` sets up sessions, CSRF and Babel (loyalty/web/base.py) and registers every page
blueprint listed in `PAGES`: a new module of pages makes `bp = PageBlueprint(...)` and is added
there.
"""

from __future__ import annotations

from flask import Flask

from loyalty.web import base, feedback, site, staff
from loyalty.web.base import pages_or

PAGES = (site, feedback, staff)

__all__ = ["PAGES", "init_app", "pages_or"]


def init_app(app: Flask) -> None:
    base.init_app(app)
    for module in PAGES:
        app.register_blueprint(module.bp)
