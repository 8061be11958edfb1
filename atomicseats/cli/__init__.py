"""Operator commands (`flask ...`), one module per concern: accounts, operations (audit,
close-sales, reconcile), outbox, processes (bridge, worker-queues, health), retention (purge).
Each calls services and never commits itself."""

from __future__ import annotations

from flask import Flask


def register_cli(app: Flask) -> None:
    from atomicseats.cli import accounts, operations, outbox, processes, retention

    app.cli.add_command(accounts.users_cli)
    app.cli.add_command(accounts.seed_demo_command)
    app.cli.add_command(operations.audit_command)
    app.cli.add_command(operations.close_sales_command)
    app.cli.add_command(operations.expire_offers_command)
    app.cli.add_command(processes.bridge_command)
    app.cli.add_command(processes.worker_queues_command)
    app.cli.add_command(processes.health_command)
    app.cli.add_command(outbox.outbox_cli)
    app.cli.add_command(operations.reconcile_command)
    app.cli.add_command(retention.purge_command)
