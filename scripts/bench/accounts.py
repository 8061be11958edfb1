"""Setup: the bench's accounts (1 host and G guests inserted with one shared password hash and
logged in in-process: argon2 costs ~0.3 s per hash here) and its events, created through the API."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.bench.common import BIN, GUEST_PASSWORD, WORK, http_json, run


def internal_setup(guests: int, out_path: str) -> None:
    """Run with the app's environment (a subprocess): insert 1 host + N guests sharing one
    password hash, log each in (an AuthSession + tokens, exactly as /api/user/login does)."""
    from atomicseats import create_app
    from atomicseats.extensions import db
    from atomicseats.models import User
    from atomicseats.services import users

    app = create_app()
    with app.app_context():
        password_hash = users.password_hasher().hash(GUEST_PASSWORD)
        host = User(
            username="bench_host",
            name="Bench Host",
            email="bench_host@bench.example",
            password_hash=password_hash,
            role="host",
        )
        people = [
            User(
                username=f"bench_guest_{i}",
                name=f"Bench Guest {i}",
                email=f"bench_guest_{i}@bench.example",
                password_hash=password_hash,
                role="guest",
            )
            for i in range(guests)
        ]
        db.session.add_all([host, *people])
        db.session.commit()
        result = {
            "host_id": host.id,
            "host_token": users.login(host.id).access_token,
            "guest_ids": [person.id for person in people],
            "guest_tokens": [users.login(person.id).access_token for person in people],
        }
    Path(out_path).write_text(json.dumps(result))


def make_accounts(env: dict, guests: int, tag: str) -> dict:
    out = WORK / f"accounts-{tag}.json"
    run(
        [str(BIN / "python"), "-m", "scripts.bench", "--internal-setup", str(guests), str(out)],
        env,
        300,
        f"setup-{tag}.log",
    )
    accounts = json.loads(out.read_text())
    (WORK / f"tokens-{tag}.txt").write_text("\n".join(accounts["guest_tokens"]) + "\n")
    return accounts


def create_event(api: str, token: str, name: str, capacity: int) -> int:
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    body = {
        "name": name,
        "venue": "Bench Arena",
        "description": "benchmark event",
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(hours=3)).isoformat(),
        "capacity": capacity,
        "price": 2500,
    }
    return int(http_json("POST", f"{api}/api/events/create", body, token)["data"]["id"])


@dataclass
class Events:
    hot: int
    spread: list[int]
    warmup: int
    backlog: list[int] = field(default_factory=list)
    waits: int | None = None


def create_events(api: str, token: str, args, with_backlog: bool) -> Events:
    hot = create_event(api, token, "Flash sale: the hot one", args.hot_capacity)
    spread = [
        create_event(api, token, f"Spread event {i + 1}", args.spread_capacity) for i in range(args.spread_events)
    ]
    warmup = create_event(api, token, "Warm-up", 1_000_000)
    events = Events(hot=hot, spread=spread, warmup=warmup)
    if with_backlog:
        events.backlog = [create_event(api, token, f"Backlog hot event {i + 1}", args.hot_capacity) for i in range(2)]
    if args.waits > 0:
        events.waits = create_event(api, token, "Waiting room", args.hot_capacity)
    return events
