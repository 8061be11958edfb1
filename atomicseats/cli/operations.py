"""`flask reconcile`: rebuild Redis' availability entries and waitlist mirrors from Postgres."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app

from atomicseats.services import reconcile


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


def register_reconcile_cli(app: Flask) -> None:
    app.cli.add_command(reconcile_command)
