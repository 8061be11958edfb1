"""JSON API blueprints: parse with a schema, call one service, answer in the envelope."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from atomicseats.api import admin, bookings, docs, events, health, tickets, users

    for module in (users, events, bookings, tickets, admin, docs, health):
        app.register_blueprint(module.bp)
