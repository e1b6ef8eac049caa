"""The staff back office (/staff): sign-in, members, feedback inbox, dashboard, programme.

A thin layer over `loyalty/domain/`, like the API: each action calls the domain function the
API's endpoint calls, in one transaction, recorded in the audit log under the staff member's
name. Roles (`loyalty.domain.staff.PERMISSIONS`): reports sees the dashboard; staff also the
members and the feedback inbox; admin also the programme settings and the rewards catalogue.
"""

from __future__ import annotations

from loyalty.web.staff import account, members, reports, settings  # noqa: F401  (routes)
from loyalty.web.staff.blueprint import bp

__all__ = ["bp"]
