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
    help="allocation: every partition's queue and maintenance; notifications: e-mail, domain events and housekeeping.",
)
def worker_queues_command(kind: str) -> None:
    """Print the Celery queues a worker must consume (comma-separated, for -Q)."""
    from flask import current_app

    from atomicseats.names import worker_queues

    click.echo(",".join(worker_queues(kind, current_app.config["KAFKA_PARTITIONS"])))


HEALTH_PROCESSES = ("bridge", "worker", "mailer", "beat")
HEALTH_HTTP_TIMEOUT_S = 3.0
BEAT_HEARTBEAT_AGE_S_MAX = 30.0  # beat sends the sweeper's task every 2 s


@click.command("health")
@click.argument("process", type=click.Choice(HEALTH_PROCESSES))
@click.option("--port", type=click.IntRange(1, 65535), help="The process's metrics port (default: METRICS_PORT).")
def health_command(process: str, port: int | None) -> None:
    """Exit 0 when PROCESS (started with this environment) is alive and its dependencies answer:
    the bridge, a worker or the mailer serves its metrics on METRICS_PORT; beat touched
    BEAT_HEARTBEAT_FILE lately. For compose health checks and operators."""
    from flask import current_app

    from atomicseats.services.readiness import checks

    config = current_app.config
    problem = _beat_problem(config) if process == "beat" else _metrics_problem(config, port)
    failing = sorted(name for name, ok in checks().items() if not ok)
    if failing:
        problem = "; ".join(filter(None, [problem, f"not ready: {', '.join(failing)}"]))
    if problem:
        raise click.ClickException(f"{process} unhealthy: {problem}")
    click.echo(f"{process} healthy")


def _metrics_problem(config, port: int | None) -> str | None:
    import urllib.error
    import urllib.request

    port = port or config["METRICS_PORT"]
    if not port:
        return "METRICS_PORT (or --port) is not set: no endpoint to ask"
    host = config["METRICS_HOST"]
    host = "127.0.0.1" if host in {"0.0.0.0", ""} else host  # nosec  # B104: bind-all, asked on loopback
    url = f"http://{host}:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=HEALTH_HTTP_TIMEOUT_S) as response:  # nosec B310  # our own http:// URL
            return None if response.status == 200 else f"{url} answered {response.status}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url} does not answer ({error})"


def _beat_problem(config) -> str | None:
    import os
    import time

    path = config["BEAT_HEARTBEAT_FILE"]
    if not path:
        return "BEAT_HEARTBEAT_FILE is not set: beat keeps no heartbeat to check"
    try:
        age_s = time.time() - os.path.getmtime(path)
    except OSError:
        return f"no heartbeat at {path}"
    return None if age_s <= BEAT_HEARTBEAT_AGE_S_MAX else f"last heartbeat {age_s:.0f} s ago ({path})"
