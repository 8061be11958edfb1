"""Operator commands: `flask users create-admin`, `flask seed-demo`, `flask audit`, `flask close-sales`."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup

from atomicseats.domain import accounts, limits
from atomicseats.errors import AtomicSeatsError
from atomicseats.names import WORKER_KINDS
from atomicseats.services import audit, demo, sales, users

users_cli = AppGroup("users", help="Manage accounts.")


@users_cli.command("create-admin")
@click.option("--username", required=True)
@click.option("--email", required=True)
@click.option("--password", required=True, help=f"Password: {accounts.PASSWORD_RULE}.")
@click.option("--name", default=None, help="Display name (defaults to the username).")
def create_admin_command(username: str, email: str, password: str, name: str | None) -> None:
    """Create an administrator (the only way to get one besides another admin)."""
    try:
        user = users.create_admin(username, name or username, email, password)
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    click.echo(f"created admin {user.username} (id {user.id})")


@click.command("seed-demo")
def seed_demo_command() -> None:
    """Create demo accounts and events (embedded default only; idempotent)."""
    try:
        created = demo.seed_demo()
    except AtomicSeatsError as error:
        raise click.ClickException(_describe(error)) from error
    click.echo("Demo accounts (username / password):")
    for account in demo.DEMO_ACCOUNTS:
        marker = "new" if account in created else "existing"
        click.echo(f"  {account.role:<6} {account.username:<8} / {account.password}   ({account.email}, {marker})")


@click.command("audit")
@click.option(
    "--pending-grace-s",
    default=audit.PENDING_GRACE_S_DEFAULT,
    show_default=True,
    type=click.IntRange(0, 86400),
    help="How long a request may stay pending before it counts as stranded.",
)
def audit_command(pending_grace_s: int) -> None:
    """Check every invariant of DESIGN.md; exit 1 and list violations if any fail."""
    report = audit.run_audit(pending_grace_s)
    click.echo(f"audited {report.events_checked} events, {report.requests_checked} booking requests")
    if report.is_clean:
        click.echo("audit clean: no oversell, counters agree, every request has one outcome, FIFO holds")
        return
    for violation in report.violations:
        click.echo(f"VIOLATION {violation}", err=True)
    click.echo(f"{len(report.violations)} violation(s)", err=True)
    sys.exit(1)


@click.command("close-sales")
def close_sales_command() -> None:
    """Close out the waitlists of events whose sales ended (the beat task does it in full mode)."""
    total = sales.CloseOutReport(0, 0)
    for _ in range(sales.CLOSE_OUT_RUNS_MAX):
        report = sales.close_due_sales()
        total = sales.CloseOutReport(
            total.events_closed + report.events_closed, total.entries_expired + report.entries_expired
        )
        if report.events_closed < limits.CLOSE_OUT_EVENTS_PER_RUN_MAX:
            break
    click.echo(f"closed out {total.events_closed} event(s): {total.entries_expired} waiting entries expired")


def _describe(error: AtomicSeatsError) -> str:
    details = "; ".join(f"{field}: {' '.join(map(str, messages))}" for field, messages in error.errors.items())
    return f"{error.message}{' (' + details + ')' if details else ''}"


@click.command("bridge")
def bridge_command() -> None:
    """Run the Kafka bridge (same as `python kafka_bridge.py`); stops cleanly on SIGTERM."""
    from flask import current_app

    from atomicseats.bridge import run_bridge

    if current_app.config["PIPELINE"] != "kafka":
        raise click.ClickException("PIPELINE is 'embedded': set KAFKA_BROKERS to run the Kafka pipeline")
    sys.exit(run_bridge(current_app._get_current_object()))


@click.command("worker-queues")
@click.option(
    "--kind",
    type=click.Choice(WORKER_KINDS),
    default="all",
    show_default=True,
    help="allocation: every partition's queue and maintenance; notifications: e-mail and domain events.",
)
def worker_queues_command(kind: str) -> None:
    """Print the Celery queues a worker must consume (comma-separated, for -Q)."""
    from flask import current_app

    from atomicseats.adapters.celery_app import worker_queues

    click.echo(",".join(worker_queues(current_app._get_current_object(), kind)))


def register_cli(app: Flask) -> None:
    from atomicseats.cli_outbox import register_outbox_cli
    from atomicseats.cli_reconcile import register_reconcile_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(audit_command)
    app.cli.add_command(close_sales_command)
    app.cli.add_command(bridge_command)
    app.cli.add_command(worker_queues_command)
    register_outbox_cli(app)
    register_reconcile_cli(app)
