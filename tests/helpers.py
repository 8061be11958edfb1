"""Small HTTP helpers shared by the API tests (through Flask's test client)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery"


@dataclass
class Account:
    id: int
    username: str
    email: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


def create_admin_args(username: str, password: str = PASSWORD) -> list[str]:
    """`flask users create-admin` arguments for a test admin (in-process runner or subprocess)."""
    return [
        "users",
        "create-admin",
        "--username",
        username,
        "--email",
        f"{username}@example.test",
        "--password",
        password,
    ]


def register(client, role: str = "guest", username: str | None = None) -> dict:
    number = next(_counter)
    username = username or f"{role}{number}"
    response = client.post(
        "/api/user/register",
        json={
            "username": username,
            "name": f"User {number}",
            "email": f"{username}@example.test",
            "password": PASSWORD,
            "role": role,
        },
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def login(client, username: str, password: str = PASSWORD) -> Account:
    response = client.post("/api/user/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    user = data["user"]
    return Account(user["id"], user["username"], user["email"], user["role"], data["accessToken"], data["refreshToken"])


def account(client, role: str = "guest") -> Account:
    if role == "admin":
        return admin_account(client)
    return login(client, register(client, role)["username"])


def admin_account(client) -> Account:
    from atomicseats.services import users

    number = next(_counter)
    users.create_admin(f"admin{number}", "Admin", f"admin{number}@example.test", PASSWORD)
    return login(client, f"admin{number}")


def event_payload(**overrides) -> dict:
    starts_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=10)
    payload = {
        "name": "Test Concert",
        "description": "A test event",
        "venue": "Test Hall",
        "startsAt": starts_at.isoformat(),
        "endsAt": (starts_at + timedelta(hours=2)).isoformat(),
        "capacity": 10,
        "price": 1500,
    }
    payload.update(overrides)
    return payload


def create_event(client, host: Account, **overrides) -> dict:
    response = client.post("/api/events/create", json=event_payload(**overrides), headers=host.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def book(client, guest: Account, event_id: int, seats: int, expect: int = 202, **headers) -> dict:
    response = client.post(
        "/api/events/book", json={"eventId": event_id, "numberOfSeats": seats}, headers={**guest.headers, **headers}
    )
    assert response.status_code == expect, response.get_json()
    return response.get_json()["data"] if expect < 300 else response.get_json()


def event(client, event_id: int) -> dict:
    response = client.get(f"/api/events/{event_id}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]
