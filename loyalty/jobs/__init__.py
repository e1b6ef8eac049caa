"""Background jobs on a Huey queue: the Stripe coupon mirror, win-back campaigns, and the periodic
sweeps. `flask loyalty worker` runs them (`make run` starts it beside the server).

`init_app` gives an app its queue (`queue.make_huey`) and registers the jobs (`tasks.register`).
"""

from __future__ import annotations

from flask import Flask

from loyalty.jobs import tasks
from loyalty.jobs.queue import (
    EXTENSION,
    Jobs,
    discard_after_rollback,
    enqueue_after_commit,
    jobs_of,
    listen_for_stripe_mirroring,
    make_huey,
)

__all__ = ["Jobs", "discard_after_rollback", "enqueue_after_commit", "init_app", "jobs_of"]


def init_app(app: Flask) -> Jobs:
    """The app's queue, from its config, with every job registered; kept in app.extensions."""
    jobs = Jobs(app, make_huey(app.config))
    tasks.register(jobs)
    app.extensions[EXTENSION] = jobs
    listen_for_stripe_mirroring()
    return jobs
