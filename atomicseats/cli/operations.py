"""Operations: `flask audit` (check the invariants), `flask close-sales`, `flask reconcile`
(rebuild Redis' availability entries and waitlist mirrors from Postgres)."""

from __future__ import annotations

import sys

import click
from flask import current_app

from atomicseats.domain import limits
from atomicseats.services import audit, offers, reconcile, sales


@click.command("reconcile")
def reconcile_command() -> None:
    """Compare what Redis mirrors with Postgres and rewrite what drifted; exit 1 if a repair failed."""
    if not current_app.config.get("REDIS_URL"):
        click.echo("no Redis configured (REDIS_URL is empty): nothing to reconcile")
        return
    report = reconcile.reconcile()
    click.echo(
        f"reconciled {report.events_checked} events: {report.availability_repaired} availability entries"
        f" and {report.waitlists_repaired} waitlists repaired"
    )
    for line in report.details:
        click.echo(f"  {line}")
    if not report.is_complete:
        click.echo(f"{report.repairs_failed} repair(s) failed: run `flask reconcile` again", err=True)
        sys.exit(1)


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


@click.command("expire-offers")
def expire_offers_command() -> None:
    """End the waitlist offers past their deadline (the beat task does it in full mode)."""
    ended = offers.expire_due_offers()
    click.echo(f"{ended} offer(s) ended: their seats went to the next in line")


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
