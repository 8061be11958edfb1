"""Schemathesis hooks of the contract test (tests/contract/schemathesis.toml names this module):
each operation is called with the bearer token of the account it is for.

The environment variable ATOMICSEATS_FUZZ_ACCOUNTS (JSON, set by test_live_api.py) holds
`url`, `password`, and the fuzzing's own accounts: `host`, `guest` and `admin`, each
{"id", "username", "accessToken"}, and `bystanderId`. Without it, no call is authenticated.
"""

from __future__ import annotations

import json
import os
import urllib.request
from functools import cache

import schemathesis

ACCOUNTS_VARIABLE = "ATOMICSEATS_FUZZ_ACCOUNTS"
LOGIN_TIMEOUT_S = 10
UNAUTHENTICATED_PATHS = frozenset(
    {"/api/user/register", "/api/user/login", "/api/user/refresh", "/api/events/{event_id}"}
)


@cache
def accounts() -> dict | None:
    raw = os.environ.get(ACCOUNTS_VARIABLE)
    return json.loads(raw) if raw else None


def token_for(known: dict, path: str, tag: str) -> str | None:
    """Admins' routes and the catalogue (whose status=deleted is an admin's) take the admin's
    token, the host's routes the host's, booking and history the guest's; logout a session
    of its own each time, so it never ends the session the other calls use."""
    if path == "/api/user/logout":
        return fresh_access_token(known, known["guest"]["username"])
    if path in UNAUTHENTICATED_PATHS:
        return None
    if tag == "admin" or path == "/api/events/all":
        return known["admin"]["accessToken"]
    if tag == "events":
        return known["host"]["accessToken"]
    return known["guest"]["accessToken"]


def fresh_access_token(known: dict, username: str) -> str:
    body = json.dumps({"username": username, "password": known["password"]}).encode()
    request = urllib.request.Request(
        f"{known['url']}/api/user/login", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=LOGIN_TIMEOUT_S) as answer:  # nosec B310: our loopback server
        return json.loads(answer.read())["data"]["accessToken"]


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    known = accounts()
    if known is None:
        return
    own_ids = {str(known[role]["id"]) for role in ("host", "guest", "admin")}
    if case.path_parameters and str(case.path_parameters.get("user_id")) in own_ids:
        # A role change ends the user's sessions: aim it at the bystander, never at us (the
        # coverage phase writes path parameters as text: "2" is user 2 as much as 2 is).
        case.path_parameters["user_id"] = known["bystanderId"]
    token = token_for(known, case.operation.path, (case.operation.tags or [""])[0])
    if token is not None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
