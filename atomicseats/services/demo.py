"""Demo data for the embedded default: hosts, guests, an admin and a few events.

Refused outside configurations that allow it (never in production).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from atomicseats.domain import accounts
from atomicseats.errors import Forbidden
from atomicseats.extensions import db
from atomicseats.models import Event, User, utcnow
from atomicseats.services import events, users


@dataclass(frozen=True)
class DemoAccount:
    role: str
    username: str
    email: str
    password: str


DEMO_ACCOUNTS = (
    DemoAccount("admin", "admin", "admin@demo.atomicseats.local", "admin-demo-pass"),
    DemoAccount("host", "hannah", "hannah@demo.atomicseats.local", "host-demo-pass"),
    DemoAccount("guest", "gary", "gary@demo.atomicseats.local", "guest-demo-pass"),
    DemoAccount("guest", "grace", "grace@demo.atomicseats.local", "guest-demo-pass"),
)

DEMO_EVENTS = (
    ("Midnight Jazz at the Atomic Club", "Late-night quartet, standing room.", "Atomic Club", 3, 40, 2500),
    ("Flash Sale: Stadium Rock Reunion", "The on-sale everyone is waiting for.", "Riverside Stadium", 14, 8, 8900),
    ("Python Meetup: Locks and Queues", "Talks on concurrency. Free entry.", "Library Hall", 7, 25, 0),
)


def seed_demo() -> list[DemoAccount]:
    """Create the demo accounts and events once; running it again changes nothing."""
    if not current_app.config.get("SEED_DEMO_ALLOWED"):
        raise Forbidden("Demo data is only allowed in the embedded default configuration")
    created = []
    for account in DEMO_ACCOUNTS:
        if db.session.execute(select(User.id).where(User.username == account.username)).first():
            continue
        name = account.username.capitalize()
        if accounts.is_admin(account.role):
            users.create_admin(account.username, name, account.email, account.password)
        else:
            users.register_user(account.username, name, account.email, account.password, account.role)
        created.append(account)
    host = db.session.execute(select(User).where(User.username == "hannah")).scalar_one()
    if db.session.execute(select(Event.id).where(Event.host_id == host.id)).first() is None:
        for name, description, venue, days_ahead, capacity, price_minor in DEMO_EVENTS:
            starts_at = (utcnow() + timedelta(days=days_ahead)).replace(hour=19, minute=30, second=0, microsecond=0)
            events.create_event(
                host,
                {
                    "name": name,
                    "description": description,
                    "venue": venue,
                    "starts_at": starts_at,
                    "ends_at": starts_at + timedelta(hours=3),
                    "capacity_seats": capacity,
                    "price_minor": price_minor,
                },
            )
    return created
