"""Retention: `flask purge [--dry-run]` deletes old decided requests, delivered outbox rows and
ended login sessions (RETENTION_*_DAYS), in short batches, and prints what it removed."""

from __future__ import annotations

import click

from atomicseats.domain import limits
from atomicseats.errors import AtomicSeatsError
from atomicseats.services import retention


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@click.option(
    "--batch-size",
    default=limits.PURGE_BATCH_SIZE_MAX,
    show_default=True,
    type=click.IntRange(1, limits.PURGE_BATCH_SIZE_MAX),
    help="Rows deleted per transaction.",
)
def purge_command(dry_run: bool, batch_size: int) -> None:
    """Delete what the retention settings say nobody needs any more (services/retention.py)."""
    policy = retention.configured_policy()
    click.echo(
        f"retention: requests {policy.requests_days} days, outbox {policy.outbox_days} days,"
        f" sessions {policy.sessions_days} days"
    )
    try:
        if dry_run:
            counts = retention.purgeable_counts(policy)
            click.echo(
                f"dry run, would remove: {counts['requests']} booking requests, {counts['outbox']} outbox rows,"
                f" {counts['sessions']} sessions"
            )
            return
        report = retention.purge(policy, batch_size=batch_size)
    except AtomicSeatsError as error:
        raise click.ClickException(error.message) from error
    click.echo(
        f"removed: {report.requests} booking requests, {report.outbox} outbox rows, {report.sessions} sessions"
        f" ({report.batches} batches of at most {batch_size})"
    )
    if not report.is_complete:
        click.echo("more remain: run `flask purge` again (beat's purge task goes on by itself)")
