"""`flask --app wsgi loyalty ...`: API keys, demo data, housekeeping."""

from __future__ import annotations

import logging
import logging.config
import os
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.api import limits, settings
from loyalty.domain import (
    campaigns,
    clients,
    demo_history,
    earning_rules,
    idempotency,
    imports,
    ledger,
    members,
    program,
    purchases,
    rewards,
    rollups,
    staff,
    tiers,
    vouchers,
)
from loyalty.domain.context import Actor
from loyalty.errors import Conflict, DomainError
from loyalty.extensions import db, write_transaction
from loyalty.integrations.stripe import StripeConfig
from loyalty.jobs import jobs_of
from loyalty.jobs import tasks as job_tasks
from loyalty.jobs.queue import RUN_CAMPAIGN
from loyalty.models import SCOPES, STAFF_ROLES, ApiClient, Member
from loyalty.models.types import utcnow
from loyalty.observability import logging_config

loyalty_cli = AppGroup("loyalty", help="Loyalty administration.")


def _refused(exc: DomainError) -> click.ClickException:
    """A refusal of the key rules, as the command's error (exit 1); nothing was written."""
    db.session.rollback()
    return click.ClickException(exc.detail)


@loyalty_cli.command("create-api-key")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="Repeat for several scopes.",
)
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, clients.MAX_EXPIRY_DAYS),
    default=None,
    help="The key stops working after this many days (default: never).",
)
@click.option(
    "--store",
    "store_id",
    default=None,
    help="Bind the key to this store_id: it posts purchases and returns for that store only.",
)
def create_api_key(
    name: str, scopes: tuple[str, ...], expires_in_days: int | None, store_id: str | None
) -> None:
    """Create an API client NAME with a new key, printed once, alone on the last line. The name
    of a revoked client may be used again (for a new client)."""
    try:
        issued = clients.create_client(
            db.session(), name, list(scopes), expires_in_days=expires_in_days, store_id=store_id
        )
        db.session.commit()
    except DomainError as exc:
        raise _refused(exc) from None
    except IntegrityError:  # a concurrent create-api-key of the same name won
        raise _refused(Conflict(f"An API client named {name!r} is active.")) from None
    click.echo(f"Created API key {name!r} with scopes {', '.join(issued.client.scopes)}.")
    if issued.client.store_id is not None:
        click.echo(f"It posts for store {issued.client.store_id!r} only.")
    if issued.client.expires_at is not None:
        click.echo(f"It expires {issued.client.expires_at:%Y-%m-%d %H:%M} UTC.")
    click.echo("It is shown only this once; it is stored hashed.")
    click.echo(issued.key)


@loyalty_cli.command("rotate-api-key")
@click.argument("name")
@click.option(
    "--grace-hours",
    type=click.IntRange(0, 24 * 90),
    default=None,
    help="How long the old key keeps working (default: LOYALTY_API_KEY_GRACE_HOURS, 24); "
    "0 stops it at once.",
)
@click.option(
    "--expires-in-days",
    type=click.IntRange(1, clients.MAX_EXPIRY_DAYS),
    default=None,
    help="The new key stops working after this many days (default: when the old one would).",
)
def rotate_api_key(name: str, grace_hours: int | None, expires_in_days: int | None) -> None:
    """Give the API client NAME a new key, printed once, alone on the last line. The old key
    keeps working for the grace period, so the client can switch over without a failed
    request; a key replaced before that stops now. The client stays the same (its
    Idempotency-Keys and external_ids, its store and, unless --expires-in-days, its expiry)."""
    if grace_hours is None:
        grace_hours = max(0, int(current_app.config["LOYALTY_API_KEY_GRACE_HOURS"]))
    try:
        issued = clients.rotate_key(
            db.session(), name, timedelta(hours=grace_hours), expires_in_days=expires_in_days
        )
        db.session.commit()
    except DomainError as exc:
        raise _refused(exc) from None
    if issued.previous_until is None:
        click.echo(f"Rotated {name!r}: the old key stopped working now.")
    else:
        click.echo(
            f"Rotated {name!r}: the old key keeps working until "
            f"{issued.previous_until:%Y-%m-%d %H:%M} UTC, then only the new one does."
        )
    if issued.client.expires_at is not None:
        click.echo(f"The new key expires {issued.client.expires_at:%Y-%m-%d %H:%M} UTC.")
    click.echo("It is shown only this once; it is stored hashed.")
    click.echo(issued.key)


def _key_state(c: ApiClient, now: datetime) -> str:
    """A client's state for list-api-keys: revoked, expired or active, and what qualifies it."""
    if c.revoked_at:
        return f"revoked {c.revoked_at:%Y-%m-%d %H:%M}"
    if c.expires_at and c.expires_at <= now:
        return f"expired {c.expires_at:%Y-%m-%d %H:%M}"
    state = "active"
    if c.expires_at:
        state += f", expires {c.expires_at:%Y-%m-%d %H:%M} UTC"
    if c.previous_key_expires_at and c.previous_key_expires_at > now:
        state += f", old key until {c.previous_key_expires_at:%Y-%m-%d %H:%M} UTC"
    return state


@loyalty_cli.command("list-api-keys")
def list_api_keys() -> None:
    """List API clients (name, scopes, key prefix, state, store, last used), revoked ones too."""
    rows = db.session.scalars(select(ApiClient).order_by(ApiClient.name, ApiClient.id)).all()
    if not rows:
        click.echo("No API keys.")
    now = utcnow()
    for c in rows:
        store = f"store {c.store_id}" if c.store_id is not None else "any store"
        used = f"used {c.last_used_at:%Y-%m-%d %H:%M}" if c.last_used_at else "never used"
        click.echo(
            f"{c.name}\t{','.join(c.scopes)}\t{c.key_prefix}…\t{_key_state(c, now)}\t"
            f"{store}\t{used}"
        )


@loyalty_cli.command("revoke-api-key")
@click.argument("name")
def revoke_api_key(name: str) -> None:
    """Revoke the API client NAME: its key (and an old one still in its grace period) stops
    working at once, on every server. The name may then be given to a new client."""
    try:
        revoked = clients.revoke(db.session(), name)
        db.session.commit()
    except DomainError as exc:
        raise _refused(exc) from None
    click.echo(f"Revoked {name!r}." if revoked else f"{name!r} was revoked already.")


@loyalty_cli.command("create-staff")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES), help="What they may do.")
@click.option("--name", default=None, help="Their name in the audit log (default: from EMAIL).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (else: a prompt).",
)
def create_staff(email: str, role: str, name: str | None, password_stdin: bool) -> None:
    """Create a staff account for the back office (/staff): reports (the dashboard), staff (also
    members: look up, adjust, vouchers, cards, personal data) or admin (also the programme and
    the rewards). The password is asked for twice (or read from standard input), stored hashed."""
    password = _new_password(password_stdin)
    try:
        account = staff.create_staff(db.session(), email, password, role, name=name)
        db.session.commit()
    except DomainError as exc:
        raise _refused(exc) from None
    except IntegrityError:  # a concurrent create-staff of the same e-mail won
        raise _refused(Conflict("A staff account with this e-mail exists.")) from None
    click.echo(f"Created staff account {account.email} ({account.role}), named {account.name!r}.")


def _new_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@loyalty_cli.command("set-staff-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read it from standard input's first line.")
def set_staff_password(email: str, password_stdin: bool) -> None:
    """Give the staff account EMAIL a new password (asked for twice, or read from standard
    input); its sessions end at once."""
    try:
        account = staff.get_staff(db.session(), email)
        staff.set_password(db.session(), account, _new_password(password_stdin))
        db.session.commit()
    except DomainError as exc:
        raise _refused(exc) from None
    click.echo(f"New password set for {account.email}; its sessions have ended.")


@loyalty_cli.command("disable-staff")
@click.argument("email")
@click.option("--enable", is_flag=True, help="Let the account sign in again.")
def disable_staff(email: str, enable: bool) -> None:
    """Stop the staff account EMAIL from signing in (its sessions end at their next request),
    or with --enable let it in again. Its name stays in the audit trail."""
    try:
        account = staff.get_staff(db.session(), email)
        staff.set_enabled(db.session(), account, enable)
        db.session.commit()
    except DomainError as exc:
        raise _refused(exc) from None
    click.echo(f"{account.email} is {'enabled' if enable else 'disabled'}.")


# E-mails and phone chosen not to collide with what a newcomer types first (ann@example.com);
# +61 491 570 156 is in the Australian range reserved for fiction.
DEMO_MEMBERS: list[dict[str, Any]] = [
    {
        "name": "Dana Demo",
        "email": "dana.demo@example.com",
        "phone": "+61491570156",
        "marketing_consent": True,
        "external_ref": "demo-1",
    },
    {"name": "Eli Demo", "email": "eli.demo@example.com", "external_ref": "demo-2"},
    {
        "name": "Chloé Demo",
        "email": "chloe.demo@example.com",
        "external_ref": "demo-3",
        "card_number": "9900000000000002",
    },
]


DEMO_POINTS = [300, 80, 1000]
#: The demo's tier table: net spend over the last 365 days, in cents.
DEMO_TIERS: list[dict[str, Any]] = [
    {
        "name": "Silver",
        "qualifying_spend": 25000,
        "multiplier": 1.25,
        "benefits": ["A free coffee on your birthday"],
    },
    {
        "name": "Gold",
        "qualifying_spend": 100000,
        "multiplier": 1.5,
        "benefits": ["Free delivery", "Early access to sales"],
    },
]
DEMO_REWARDS: list[dict[str, Any]] = [
    {"name": "Free coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 50},
    {"name": "5.00 off", "kind": "amount_off", "value": 500, "points_cost": 250},
    {"name": "10% off", "kind": "percent_off", "value": 10, "points_cost": 400, "stock": 100},
]


#: The demo's earning rules: double points on coffee, and a weekend bonus on bigger baskets.
DEMO_EARNING_RULES: list[dict[str, Any]] = [
    {
        "name": "Double points on coffee",
        "kind": "multiplier",
        "value": 2,
        "conditions": {"categories": ["coffee"]},
        "max_points_per_purchase": 200,
    },
    {
        "name": "Weekend bonus",
        "kind": "bonus_points",
        "value": 25,
        "conditions": {"weekdays": [6, 7], "min_spend": 5000},
        "budget": 100000,
    },
]


@loyalty_cli.command("seed-demo")
@click.option(
    "--url",
    "base_url",
    default="http://127.0.0.1:5000",
    show_default=True,
    help="Where the server answers (make run passes its own), for the address printed.",
)
@click.option(
    "--history",
    is_flag=True,
    help="Also two years of made-up customers, purchases, returns, feedback and vouchers, so "
    "that the staff dashboard has something to show (make run loads it).",
)
def seed_demo(base_url: str, history: bool) -> None:
    """Load the demo programme (members with points, rewards), two demo API keys and a staff
    account for the back office, printed here, into a database that holds nothing yet. A
    database in use is left as it is: nothing is added, and no key or account is issued,
    changed or restored."""
    docs = f"{base_url.rstrip('/')}/api/v1/docs"
    token = write_transaction.set(True)  # SQLite: the check and the writes under one lock
    try:
        keys = _load_demo(history)
    finally:
        write_transaction.reset(token)
    if keys is None:
        click.echo(
            "The database holds data: the demo was not loaded, and API keys are as they were."
        )
        click.echo("  a key: flask --app wsgi loyalty create-api-key NAME --scope admin")
        click.echo("  a new key for a client: flask --app wsgi loyalty rotate-api-key NAME")
        click.echo(f"API docs: {docs}")
        return
    click.echo(
        f"Demo programme, {len(DEMO_MEMBERS)} members with points and "
        f"{len(DEMO_REWARDS)} rewards created."
    )
    for m in db.session.scalars(select(Member).where(Member.external_ref.like("demo-%"))):
        click.echo(f"  member {m.id}: {m.name or '(erased)'}, card {m.card_number}")
    if history:
        click.echo(f"History: {keys[HISTORY]}.")
    click.echo(f"Staff back office: {base_url.rstrip('/')}/staff/")
    click.echo(f"  sign in as {DEMO_STAFF_EMAIL} (admin), password: {keys[DEMO_STAFF_EMAIL]}")
    click.echo(f"demo-pos key (till):  {keys['demo-pos']}")
    click.echo(f"Open {docs} and authorise with the admin key:")
    click.echo(f"demo-admin key: {keys['demo-admin']}")


#: Tables whose rows say nothing of whether the database is in use: the programme's one row
#: and the metrics rollups' watermark (made by migration 0019).
_NOT_USE = frozenset({"program", "rollup_state"})


def _database_in_use(session: Session) -> bool:
    """Whether any table but the programme's (and the rollups' watermark) holds a row (a key,
    revoked or not, included)."""
    return any(
        session.execute(select(literal(1)).select_from(table).limit(1)).first() is not None
        for table in db.metadata.sorted_tables
        if table.name not in _NOT_USE
    )


#: The demo's staff account (an admin); its password is made at random and printed.
DEMO_STAFF_EMAIL = "staff@example.com"
HISTORY = "history"  # _load_demo's key of what the history made


def _load_demo(history: bool = False) -> dict[str, str] | None:
    """The demo data, keys and staff account, committed; the keys by client name, the staff
    password by its e-mail (and with `history`, what it made). None, with nothing written,
    when the database is in use (or another seed-demo loaded it meanwhile)."""
    session = db.session()
    try:
        if _database_in_use(session):
            session.rollback()
            return None
        program.ensure_program(session)
        program.update_program(session, {"tiers": DEMO_TIERS}, Actor.cli())
        program.update_program(session, {"timezone": "Europe/Amsterdam"}, Actor.cli())
        # expiry on: each credit lapses at midnight (Amsterdam) a year after it
        program.update_program(session, {"points_expire_after_days": 365}, Actor.cli())
        for rule in DEMO_EARNING_RULES:
            earning_rules.create_rule(session, dict(rule), actor=Actor.cli())
        for data, points in zip(DEMO_MEMBERS, DEMO_POINTS, strict=True):
            member = members.enrol(session, dict(data), settings=settings(), actor=Actor.cli())
            purchases.adjust(
                session, member.id, points, "demo points", actor=Actor.cli(), limits=limits()
            )
        for reward in DEMO_REWARDS:
            rewards.create_reward(session, dict(reward), actor=Actor.cli())
        issued = {
            name: clients.create_client(session, name, [scope])
            for name, scope in (("demo-admin", "admin"), ("demo-pos", "pos"))
        }
        keys = {name: i.key for name, i in issued.items()}
        keys[DEMO_STAFF_EMAIL] = secrets.token_urlsafe(12)
        staff.create_staff(session, DEMO_STAFF_EMAIL, keys[DEMO_STAFF_EMAIL], "admin", name="Sam")
        if history:
            till = issued["demo-pos"].client
            made = demo_history.load(
                session,
                now=utcnow(),
                actor=Actor(client_id=till.id, name=till.name),
                settings=settings(),
                limits=limits(),
            )
            keys[HISTORY] = (
                f"{made.customers} customers, {made.purchases} purchases, {made.returns} "
                f"returns, {made.feedback} answers, {made.vouchers} vouchers over two years"
            )
        session.commit()
    except (IntegrityError, Conflict):  # a concurrent seed-demo loaded it first
        session.rollback()
        return None
    return keys


@loyalty_cli.command("prune-idempotency")
def prune_idempotency() -> None:
    """Delete Idempotency-Key records older than LOYALTY_IDEMPOTENCY_TTL_HOURS (at least 24 h).
    The worker does this every hour."""
    ttl = idempotency.kept_hours(current_app.config["LOYALTY_IDEMPOTENCY_TTL_HOURS"])
    count = jobs_of(current_app).run_here("prune_idempotency")
    click.echo(f"Pruned {count} idempotency records older than {ttl} h.")


@loyalty_cli.command("release-expired")
def release_expired() -> None:
    """Expire reservations past their time (the worker does this every minute, and the API
    lazily whenever a member is touched)."""
    total = jobs_of(current_app).run_here("release_expired", None)
    click.echo(f"Released {total} expired reservations.")


@loyalty_cli.command("recompute-tiers")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Tiers as at the end of this day in the programme's time zone (default: now).",
)
@click.option("--dry-run", is_flag=True, help="List who would move; change nothing.")
def recompute_tiers(as_of: datetime | None, dry_run: bool) -> None:
    """Every member's tier from their net spend, by the programme's tier policy (the worker
    does this nightly)."""
    at = tiers.end_of_day(db.session(), as_of.date()) if as_of else None
    moves = jobs_of(current_app).run_here("recompute_tiers", at, dry_run, "cli")
    for move in moves:
        click.echo(
            f"  member {move.member_id}: {move.from_tier or '(none)'} -> "
            f"{move.to_tier or '(none)'} (spend {move.spend})"
        )
    verb = "would move" if dry_run else "moved"
    click.echo(f"{len(moves)} members {verb}.")


@loyalty_cli.command("expire-points")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="As at the end of this day (midnight) in the programme's time zone (default: now).",
)
def expire_points(as_of: datetime | None) -> None:
    """Expire what is left of lapsed lots and release pending points whose time is over (the
    worker does this hourly). Running it twice expires nothing more."""
    zone = ledger.lot_terms(db.session()).zone
    db.session.rollback()  # the job runs in a session of its own
    at = ledger.end_of_day(as_of.replace(tzinfo=zone), 0, zone) if as_of else None
    done = jobs_of(current_app).run_here("expire_points", at)
    click.echo(
        f"Expired {done['points']} points of {done['lots']} lots of {done['members']} members; "
        f"released {done['pending_released']} pending points."
    )


@loyalty_cli.command("metrics-rollup")
@click.option("--rebuild", is_flag=True, help="Make the rollups again from every purchase.")
@click.option("--check", "check_", is_flag=True, help="Compare the rollups with the purchases.")
def metrics_rollup(rebuild: bool, check_: bool) -> None:
    """Bring the metrics rollups up to date (the worker does this every minute); --rebuild makes
    them again from scratch (purchases go on meanwhile), --check compares them with
    the purchases they cover and exits 1 on a difference."""
    jobs = jobs_of(current_app)
    if rebuild:
        click.echo(
            f"Rebuilt the metrics rollups from {jobs.run_here('metrics_rebuild')} purchases."
        )
    else:
        click.echo(f"Rolled up {jobs.run_here('metrics_rollup', None, True)} purchases.")
    if check_:
        differing = rollups.check(db.session())
        db.session.rollback()
        click.echo(", ".join(f"{table}: {n} rows differ" for table, n in differing.items()))
        if any(differing.values()):
            raise click.exceptions.Exit(1)
        click.echo("The rollups equal the purchases.")


@loyalty_cli.command("win-back")
@click.option("--inactive-days", type=click.IntRange(1, 3650), required=True)
@click.option("--kind", type=click.Choice(["amount", "percent"]), required=True)
@click.option("--value", type=click.IntRange(1, 10**12), required=True)
@click.option("--valid-days", type=click.IntRange(1, 3650), required=True)
@click.option("--min-spend", type=click.IntRange(0, 10**12), default=0)
@click.option("--holdout-percent", type=click.IntRange(0, 100), default=0)
@click.option("--campaign", default=None, help="Default: win_back:<date>")
@click.option("--dry-run", is_flag=True, help="Count only")
def win_back(**options: Any) -> None:
    """Issue win_back vouchers to members with no purchase for INACTIVE_DAYS: the campaign runs
    here, batch after batch, as the worker runs one asked for through the API."""
    if options["kind"] == "percent" and options["value"] > 100:
        raise click.BadParameter("a percentage is at most 100", param_hint="--value")
    if options["dry_run"]:
        result = vouchers.win_back_preview(db.session(), options)
        db.session.rollback()
        click.echo(
            f"{result.campaign}: {result.eligible} eligible, would issue {result.issued}, "
            f"{result.holdout} in the holdout."
        )
        return
    campaign_id = campaigns.create_win_back(db.session(), options, actor=Actor.cli()).id
    db.session.commit()
    jobs_of(current_app).run_here(RUN_CAMPAIGN, campaign_id)
    campaign = campaigns.get_campaign(db.session(), campaign_id)
    click.echo(
        f"{campaign.name}: {campaign.eligible} eligible, issued {campaign.issued}, "
        f"{campaign.holdout} in the holdout (campaign {campaign.id}, {campaign.status})."
    )
    if campaign.status != "done":
        raise SystemExit(1)


@loyalty_cli.command("stripe-sync")
def stripe_sync() -> None:
    """The Stripe sweep once, here: create the coupons of vouchers not mirrored yet, delete
    those of used, void or expired ones. The worker does this every minute."""
    if not StripeConfig.from_mapping(current_app.config).enabled:
        raise click.ClickException("Stripe is off: set STRIPE_API_KEY")
    token = write_transaction.set(True)
    try:
        counts = job_tasks.stripe_sync()
    finally:
        write_transaction.reset(token)
    click.echo(
        f"Stripe coupons: {counts['created']} created, {counts['deleted']} deleted, "
        f"{counts['failed']} failed (left pending)."
    )
    if counts["failed"]:
        raise SystemExit(1)


@loyalty_cli.command("worker")
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=None,
    help="Jobs run at once (default: LOYALTY_WORKER_THREADS).",
)
def worker(threads: int | None) -> None:
    """Run the background jobs (the Huey consumer, periodic jobs on) until Ctrl-C (waits for
    running jobs) or SIGTERM. One worker per deployment is enough; more are safe."""
    jobs = jobs_of(current_app)
    if jobs.huey.immediate:
        raise click.ClickException("LOYALTY_JOBS_IMMEDIATE=1: jobs run where they are enqueued")
    # the same JSON lines as the app servers' (gunicorn.conf.py)
    logging.config.dictConfig(logging_config(os.environ.get("LOYALTY_LOG_LEVEL", "INFO").upper()))
    jobs.consumer(threads or current_app.config["LOYALTY_WORKER_THREADS"]).run()


def _encoding_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return imports.codec_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@loyalty_cli.command("import-purchases")
@click.argument("file", type=click.File("rb", lazy=False))
@click.option("--no-earn", is_flag=True, help="Record the purchases without earning points.")
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Check every row and count what an import would do; write nothing.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1_000_000),
    default=imports.BATCH_ROWS,
    show_default=True,
    help="Rows per transaction; a batch with a bad row is not written at all.",
)
@click.option(
    "--delimiter",
    type=click.Choice([",", ";", "tab"]),
    default=None,
    help="Between columns. Default: the one with which the header names the columns.",
)
@click.option(
    "--decimal-comma",
    is_flag=True,
    help="Amounts like 1.234,50 (a decimal comma; '.' only between thousands).",
)
@click.option(
    "--encoding",
    default=None,
    callback=_encoding_option,
    help="E.g. cp1252, latin-1. Default: UTF-8 (with or without a byte-order mark); a file "
    "that is not valid UTF-8 is read as Windows-1252.",
)
def import_purchases(file: Any, **options: Any) -> None:
    """Import purchase history from a CSV FILE (header row; columns customer_ref, external_id,
    occurred_at, amount, and optional currency, store_id), separated by ',', ';' or tabs.
    Idempotent on external_id: running it again imports nothing twice. Exits 1 when a row is
    bad (its line is reported) or the file cannot be read (the line where it cannot)."""
    check_only = options["check_only"]
    delimiter = "\t" if options["delimiter"] == "tab" else options["delimiter"]
    data = imports.seekable(file)
    label = "Checking" if check_only else "Importing"
    token = write_transaction.set(not check_only)  # SQLite: each batch holds the write lock
    try:
        encoding = imports.detect(data, options["encoding"])
        click.echo(f"Encoding: {encoding}.")
        size = imports.size(data)
        with (
            imports.text(data, encoding) as text,
            click.progressbar(length=max(size, 1), label=label) as bar,
        ):
            lines = _CountedLines(text)
            result = run_import(
                db.session(),
                lines,
                earn=not options["no_earn"],
                check_only=check_only,
                batch_rows=options["batch_size"],
                progress=lambda: bar.update(min(lines.consumed, size) - bar.pos),
                delimiter=delimiter,
                decimal_comma=options["decimal_comma"],
            )
    except imports.ImportFileError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        write_transaction.reset(token)
    _report_import(result, check_only, options["decimal_comma"])
    if not check_only and result.imported and program.get_program(db.session()).tiers:
        # the history may lift members into a tier: the nightly recompute, now, by the worker
        jobs_of(current_app).enqueue("recompute_tiers", None, False, "import")
        click.echo("Tiers: the worker recomputes every member's tier with this history.")


class _CountedLines:
    """A file's lines, counting the characters read (bytes, for the ASCII a CSV export mostly
    is), for the progress bar."""

    def __init__(self, file: Iterable[str]) -> None:
        self.file = file
        self.consumed = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.file:
            self.consumed += len(line)
            yield line


def run_import(
    session: Session,
    lines: Iterable[str],
    *,
    earn: bool = True,
    check_only: bool = False,
    batch_rows: int = imports.BATCH_ROWS,
    progress: Callable[[], None] | None = None,
    delimiter: str | None = None,
    decimal_comma: bool = False,
) -> imports.ImportResult:
    """Read and check an import file (text lines; `delimiter` None: the header's) and, unless
    `check_only`, write each good batch in a transaction of its own, begun and committed here (a
    failed write rolls its batch back and is raised). On PostgreSQL a thread writes batch N
    while this one reads and checks N + 1. `check_only`: count what would be written, reading
    only. Raises imports.HeaderError."""
    result = imports.ImportResult()
    now = utcnow()
    try:
        rates = imports.ProgramRates.of(
            program.get_program(session), earning_rules.for_import(session)
        )
        rows = imports.CsvRows(lines, delimiter)
        result.ignored_columns = rows.ignored_columns
        result.delimiter, result.delimiter_detected = rows.delimiter, rows.delimiter_detected
        parser = _row_parser(rates, earn=earn, now=now, decimal_comma=decimal_comma)
        threaded = not check_only and session.get_bind().dialect.name == "postgresql"
        checked = imports.batches(rows, parser, result, batch_rows, offer_gil=threaded)
        batches = _with_progress(checked, progress)
        if check_only:
            preview = imports.prepare_check(session)
            for batch in batches:
                result.add(imports.check_batch(session, batch, preview))
            session.rollback()
            return result
        target = imports.prepare(session, currency=rates.currency, now=now)
        session.commit()
    except BaseException:
        session.rollback()
        raise

    def write(batch: list[imports.Row]) -> None:
        try:
            written = imports.write_batch(session, batch, target)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        target.committed(written)
        result.add(written)

    imports.write_batches(batches, write, threaded=threaded)
    return result


def _row_parser(
    rates: imports.ProgramRates, *, earn: bool, now: datetime, decimal_comma: bool
) -> imports.RowParser:
    """The import's row parser, with the limits a live purchase has: the ceiling on its amount
    and the programme's dates."""
    config = current_app.config
    return imports.RowParser(
        rates,
        earn=earn,
        now=now,
        decimal_comma=decimal_comma,
        limits=limits(),
        days=(config["LOYALTY_MIN_DATE"], config["LOYALTY_MAX_DATE"]),
    )


def _with_progress(
    batches: Iterable[list[imports.Row]], progress: Callable[[], None] | None
) -> Iterator[list[imports.Row]]:
    for batch in batches:
        if progress:
            progress()
        yield batch
    if progress:
        progress()


def _report_import(result: imports.ImportResult, check_only: bool, decimal_comma: bool) -> None:
    """The summary, and every reported error. Exits 1 when a row was bad."""
    if result.ignored_columns:
        click.echo(f"Ignored columns: {', '.join(result.ignored_columns)}")
    separator = "tabs" if result.delimiter == "\t" else f"{result.delimiter!r}"
    found = "as the header shows" if result.delimiter_detected else "as given"
    point = "comma" if decimal_comma else "point"
    click.echo(f"Columns separated by {separator} ({found}); amounts with a decimal {point}.")
    if check_only:
        click.echo(
            f"{result.rows} rows checked, nothing written: {result.imported} purchases would be "
            f"imported, {result.duplicates} are already there, {result.members_created} members "
            f"would be created, {result.points_earned} points would be earned; "
            f"{result.error_count} error(s)."
        )
    else:
        click.echo(
            f"{result.rows} rows read: {result.imported} purchases imported, "
            f"{result.duplicates} already there, {result.members_created} members created, "
            f"{result.points_earned} points earned."
        )
    if result.ok:
        return
    for error in result.errors:
        click.echo(str(error), err=True)
    if result.error_count > len(result.errors):
        click.echo(f"… and {result.error_count - len(result.errors)} more errors.", err=True)
    verb = "would not be" if check_only else "were not"
    for first, last in result.failed_batches:
        click.echo(f"Lines {first}-{last} {verb} imported (a bad row in the batch).", err=True)
    then = (
        "then import the file (without --check)."
        if check_only
        else "run the same command again: what was imported is not imported twice."
    )
    click.echo(f"{result.error_count} error(s). Fix the lines and {then}", err=True)
    raise SystemExit(1)


@loyalty_cli.command("verify-ledger")
def verify_ledger() -> None:
    """Prove the books balance: balances = sums of entries, balance_after chains, no purchase
    earned twice, purchase totals = their entries. Exits 1 on any mismatch."""
    result = ledger.verify(db.session())
    click.echo(f"Checked {result.members} members and {result.entries} ledger entries.")
    if result.ok:
        click.echo("OK: every balance equals the sum of its entries; the books balance.")
        return
    for problem in result.problems:
        click.echo(f"MISMATCH {problem}", err=True)
    click.echo(f"{len(result.problems)} problem(s) found.", err=True)
    raise SystemExit(1)


def register_cli(app: Flask) -> None:
    app.cli.add_command(loyalty_cli)
