"""`flask --app wsgi loyalty ...`: API keys, demo data, housekeeping."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from loyalty import auth
from loyalty.api import settings
from loyalty.domain import (
    campaigns,
    idempotency,
    imports,
    ledger,
    members,
    program,
    purchases,
    rewards,
    vouchers,
)
from loyalty.domain.context import Actor
from loyalty.extensions import db, write_transaction
from loyalty.integrations.stripe import StripeConfig
from loyalty.jobs import jobs_of
from loyalty.jobs import tasks as job_tasks
from loyalty.jobs.queue import RUN_CAMPAIGN
from loyalty.models import SCOPES, ApiClient, Member
from loyalty.models.types import utcnow

loyalty_cli = AppGroup("loyalty", help="Loyalty administration.")


def _issue_key(name: str, scopes: list[str]) -> str:
    """Create the client `name`, or give an existing one a new key (the old one stops working)."""
    key = auth.generate_key()
    client = db.session.scalar(select(ApiClient).where(ApiClient.name == name))
    if client is None:
        client = ApiClient(name=name)
        db.session.add(client)
    client.key_hash = auth.hash_key(key)
    client.key_prefix = key[:12]
    client.scopes = sorted(set(scopes))
    client.revoked_at = None
    return key


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
def create_api_key(name: str, scopes: tuple[str, ...]) -> None:
    """Create an API key NAME; the key is printed once, alone on the last line."""
    if len(name) > 100 or not name.strip():
        raise click.BadParameter("1 to 100 characters", param_hint="NAME")
    if db.session.scalar(select(ApiClient.id).where(ApiClient.name == name)) is not None:
        raise click.ClickException(f"an API client named {name!r} exists; revoke it first")
    key = _issue_key(name, list(scopes))
    db.session.commit()
    click.echo(f"Created API key {name!r} with scopes {', '.join(sorted(set(scopes)))}.")
    click.echo("It is shown only this once; it is stored hashed.")
    click.echo(key)


@loyalty_cli.command("list-api-keys")
def list_api_keys() -> None:
    """List API clients (name, scopes, key prefix, state)."""
    rows = db.session.scalars(select(ApiClient).order_by(ApiClient.name)).all()
    if not rows:
        click.echo("No API keys.")
    for c in rows:
        state = f"revoked {c.revoked_at:%Y-%m-%d %H:%M}" if c.revoked_at else "active"
        click.echo(f"{c.name}\t{','.join(c.scopes)}\t{c.key_prefix}…\t{state}")


@loyalty_cli.command("revoke-api-key")
@click.argument("name")
def revoke_api_key(name: str) -> None:
    """Revoke the API key NAME (within LOYALTY_API_KEY_CACHE_SECONDS on every server)."""
    client = db.session.scalar(select(ApiClient).where(ApiClient.name == name))
    if client is None:
        raise click.ClickException(f"no API client named {name!r}")
    if client.revoked_at is None:
        client.revoked_at = utcnow()
    db.session.commit()
    auth.clear_cache()
    click.echo(f"Revoked {name!r}.")


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
DEMO_REWARDS: list[dict[str, Any]] = [
    {"name": "Free coffee", "kind": "free_item", "sku": "COFFEE", "points_cost": 50},
    {"name": "5.00 off", "kind": "amount_off", "value": 500, "points_cost": 250},
    {"name": "10% off", "kind": "percent_off", "value": 10, "points_cost": 400, "stock": 100},
]


@loyalty_cli.command("seed-demo")
def seed_demo() -> None:
    """A demo programme and members (once), and fresh demo keys (every time) printed here."""
    program.ensure_program(db.session())
    seeded = db.session.scalar(select(Member.id).where(Member.external_ref == "demo-1"))
    if seeded is None:
        for data, points in zip(DEMO_MEMBERS, DEMO_POINTS, strict=True):
            member = members.enrol(db.session(), dict(data), settings=settings(), actor=Actor.cli())
            purchases.adjust(db.session(), member.id, points, "demo points", actor=Actor.cli())
        for reward in DEMO_REWARDS:
            rewards.create_reward(db.session(), dict(reward), actor=Actor.cli())
        click.echo(
            f"Demo programme, {len(DEMO_MEMBERS)} members with points and "
            f"{len(DEMO_REWARDS)} rewards created."
        )
    else:
        click.echo("Demo data already present; issuing fresh demo keys.")
    admin_key = _issue_key("demo-admin", ["admin"])
    pos_key = _issue_key("demo-pos", ["pos"])
    db.session.commit()
    for m in db.session.scalars(select(Member).where(Member.external_ref.like("demo-%"))):
        click.echo(f"  member {m.id}: {m.name or '(erased)'}, card {m.card_number}")
    click.echo(f"demo-pos key (till):  {pos_key}")
    click.echo("Open http://127.0.0.1:5000/api/v1/docs and authorise with the admin key:")
    click.echo(f"demo-admin key: {admin_key}")


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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    jobs.consumer(threads or current_app.config["LOYALTY_WORKER_THREADS"]).run()


@loyalty_cli.command("import-purchases")
@click.argument("file", type=click.File("r", encoding="utf-8-sig", lazy=False))
@click.option("--no-earn", is_flag=True, help="Record the purchases without earning points.")
@click.option("--check", "check_only", is_flag=True, help="Check every row; write nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1_000_000),
    default=imports.BATCH_ROWS,
    show_default=True,
    help="Rows per transaction; a batch with a bad row is not written at all.",
)
def import_purchases(file: Any, no_earn: bool, check_only: bool, batch_size: int) -> None:
    """Import purchase history from a CSV FILE (header row; columns customer_ref, external_id,
    occurred_at, amount, and optional currency, store_id). Idempotent on external_id: running
    it again imports nothing twice. Exits 1 when a row is bad (its line is reported)."""
    size = os.fstat(file.fileno()).st_size if hasattr(file, "fileno") else 0
    lines = _CountedLines(file)
    token = write_transaction.set(True)  # SQLite: each batch holds the write lock
    try:
        with click.progressbar(length=max(size, 1), label="Importing") as bar:
            result = run_import(
                db.session(),
                lines,
                earn=not no_earn,
                check_only=check_only,
                batch_rows=batch_size,
                progress=lambda: bar.update(min(lines.consumed, size) - bar.pos),
            )
    except imports.HeaderError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        write_transaction.reset(token)
    _report_import(result, check_only)


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
) -> imports.ImportResult:
    """Read and check an import file and, unless `check_only`, write each good batch in a
    transaction of its own, begun and committed here (a failed write rolls its batch back and is
    raised). On PostgreSQL a thread writes batch N while this one reads and checks N + 1.
    Raises imports.HeaderError."""
    result = imports.ImportResult()
    now = utcnow()
    try:
        rates = imports.ProgramRates.of(program.get_program(session))
        rows = imports.CsvRows(lines)
        result.ignored_columns = rows.ignored_columns
        parser = imports.RowParser(rates, earn=earn, now=now)
        threaded = not check_only and session.get_bind().dialect.name == "postgresql"
        checked = imports.batches(rows, parser, result, batch_rows, offer_gil=threaded)
        batches = _with_progress(checked, progress)
        if check_only:
            for _ in batches:
                pass
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


def _with_progress(
    batches: Iterable[list[imports.Row]], progress: Callable[[], None] | None
) -> Iterator[list[imports.Row]]:
    for batch in batches:
        if progress:
            progress()
        yield batch
    if progress:
        progress()


def _report_import(result: imports.ImportResult, check_only: bool) -> None:
    """The summary, and every reported error. Exits 1 when a row was bad."""
    if result.ignored_columns:
        click.echo(f"Ignored columns: {', '.join(result.ignored_columns)}")
    verb = "checked" if check_only else "read"
    click.echo(
        f"{result.rows} rows {verb}: {result.imported} purchases imported, {result.duplicates} "
        f"already there, {result.members_created} members created, "
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
    click.echo(
        f"{result.error_count} error(s). Fix the lines and run the same command again: "
        "what was imported is not imported twice.",
        err=True,
    )
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
