"""Pipeline processes: `flask bridge` (the Kafka bridge), `flask worker-queues` (a worker's -Q)."""

from __future__ import annotations

import sys

import click

from atomicseats.names import WORKER_KINDS


@click.command("bridge")
def bridge_command() -> None:
    """Run the Kafka bridge (same as `python kafka_bridge.py`); stops cleanly on SIGTERM."""
    from flask import current_app

    from atomicseats.bridge import run_bridge

    if current_app.config["PIPELINE"] != "kafka":
        raise click.ClickException("PIPELINE is 'embedded': set KAFKA_BROKERS to run the Kafka pipeline")
    # Flask types current_app as the app itself; it is a proxy, and the bridge's threads need the app.
    sys.exit(run_bridge(current_app._get_current_object()))  # type: ignore[attr-defined]


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

    from atomicseats.names import worker_queues

    click.echo(",".join(worker_queues(kind, current_app.config["KAFKA_PARTITIONS"])))
