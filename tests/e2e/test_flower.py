"""Flower (Celery's task monitor), started the way `make up` starts it (scripts/platform.sh
start flower: on 127.0.0.1, basic auth from FLOWER_BASIC_AUTH of the stack's secrets file,
the app's broker): its HTTP API refuses a caller without the login and, with it, lists the
allocation task that decided a booking (the workers send task events: celery_config)."""

from __future__ import annotations

import ast
import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from atomicseats.names import ALLOCATE_EVENTS_TASK
from tests.e2e.support import Platform, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def flower(platform: Platform) -> Iterator[str]:
    platform.start("flower")  # waits until Flower answers its health check
    try:
        yield platform.env["FLOWER_URL"]
    finally:
        platform.platform_sh("stop", "flower")


def get(url: str, login: str | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url)
    if login is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own loopback stack
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


def test_flower_asks_a_login_and_lists_the_allocation_tasks_of_a_booking(platform: Platform, flower: str):
    login = platform.env["FLOWER_BASIC_AUTH"]
    user, _, password = login.partition(":")
    assert flower.startswith("http://127.0.0.1:") and user and len(password) >= 24
    tasks_url = f"{flower}/api/tasks?taskname={ALLOCATE_EVENTS_TASK}"
    assert get(tasks_url)[0] == 401
    assert get(tasks_url, f"{user}:not-the-password")[0] == 401

    host = platform.register("host")
    guest = platform.register()
    event_id = platform.create_event(host, capacity=2)["id"]
    request_id = platform.book_accepted(guest, event_id, 2)
    assert platform.wait_final(request_id)["status"] == "confirmed"

    def allocation_tasks() -> list[dict]:
        status, tasks = get(tasks_url, login)
        assert status == 200, status
        assert isinstance(tasks, dict)
        return [task for task in tasks.values() if task["name"] == ALLOCATE_EVENTS_TASK and task["state"] == "SUCCESS"]

    decided = poll(allocation_tasks, 20, 0.5, "Flower lists a succeeded allocation task")
    # The task that decided this booking: allocate_events(partition, [event ids]).
    assert any(event_id in ast.literal_eval(task["args"])[1] for task in decided), decided
