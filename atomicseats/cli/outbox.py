"""Operator commands for the notification outbox: `flask outbox send | publish | status | requeue-failed`."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from atomicseats.domain import limits
from atomicseats.errors import AtomicSeatsError
from atomicseats.services import outbox

outbox_cli = AppGroup("outbox", help="Deliver and inspect the notification outbox.")
BATCH_SIZE = click.IntRange(1, limits.OUTBOX_BATCH_SIZE_MAX)


@outbox_cli.command("send")
@click.option("--limit", default=limits.OUTBOX_BATCH_SIZE_MAX, show_default=True, type=BATCH_SIZE)
def send_command(limit: int) -> None:
    """Send one batch of the e-mails that are due now and print what happened."""
    try:
        report = outbox.send_due_notifications(limit)
    except AtomicSeatsError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"sent {report.sent}, to retry later {report.retried}, failed {report.failed}")
    click.echo(f"still due now: {outbox.outbox_backlog()['due']}")


@outbox_cli.command("publish")
@click.option("--limit", default=limits.OUTBOX_BATCH_SIZE_MAX, show_default=True, type=BATCH_SIZE)
def publish_command(limit: int) -> None:
    """Publish one batch of unpublished domain events to Kafka (booking-events)."""
    click.echo(f"published {outbox.publish_due_domain_events(limit)}")


@outbox_cli.command("status")
def status_command() -> None:
    """Print the backlog: e-mails pending (and due now), failed, events not yet published."""
    for name, count in outbox.outbox_backlog().items():
        click.echo(f"{name:<12} {count}")


@outbox_cli.command("requeue-failed")
@click.option("--limit", default=limits.OUTBOX_BATCH_SIZE_MAX, show_default=True, type=BATCH_SIZE)
def requeue_failed_command(limit: int) -> None:
    """Give failed e-mails a fresh set of attempts (e.g. after a long SMTP outage)."""
    try:
        count = outbox.requeue_failed_notifications(limit)
    except AtomicSeatsError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"requeued {count}")
