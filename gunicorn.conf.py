"""gunicorn settings for Loyalty; gunicorn reads this file from the working directory.

Command-line flags override these (`make run` and the tests pass --bind and --workers).
"""

import multiprocessing
import os

bind = os.environ.get("LOYALTY_BIND", "127.0.0.1:8000")
# CPU-bound Python: about two processes per core; WEB_CONCURRENCY overrides.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
# The longest query the OpenAPI document allows (member search: e-mail, phone and q, each
# character up to 12 bytes percent-encoded) must reach the app: it, not gunicorn, answers with
# problem+json. gunicorn's default of 4094 bytes answers some of them with an HTML 414.
limit_request_line = 8190
# Keep-alive for tills and webshops that reuse connections behind a proxy.
keepalive = 5
timeout = 30
