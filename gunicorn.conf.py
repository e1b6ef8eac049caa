"""gunicorn settings for Loyalty; gunicorn reads this file from the working directory.

Command-line flags override these (`make run` and the tests pass --bind and --workers).
"""

import glob
import multiprocessing
import os
import re

# Prometheus multiprocess mode: every worker writes its counters to files in one folder and
# /metrics adds them up. Set before anything imports prometheus_client; the job worker
# (`flask loyalty worker`) should get the same PROMETHEUS_MULTIPROC_DIR to add its job counters.
_HERE = os.path.dirname(os.path.abspath(__file__))
METRICS_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(_HERE, "instance", "prometheus")
)
os.makedirs(METRICS_DIR, mode=0o700, exist_ok=True)

from loyalty.observability import logging_config  # noqa: E402  (after the variable above)

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

# Logs: JSON lines on stderr (loyalty/observability.py), one per request from the app itself.
# gunicorn's access log is off unless --access-logfile is given; its format never includes the
# query string (%(U)s is the path alone) nor the Referer, which may carry personal data.
loglevel = os.environ.get("LOYALTY_LOG_LEVEL", "info").lower()
logconfig_dict = logging_config(loglevel.upper())
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms %({x-request-id}o)s'

_METRICS_FILE = re.compile(r".*_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def on_starting(server):
    """Remove the metric files of processes that are gone (an earlier run's workers)."""
    for path in glob.glob(os.path.join(METRICS_DIR, "*.db")):
        match = _METRICS_FILE.match(path)
        if match and not _alive(int(match.group(1))):
            os.remove(path)


def child_exit(server, worker):
    """A worker ended: its live gauges go (prometheus_client's multiprocess clean-up)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
