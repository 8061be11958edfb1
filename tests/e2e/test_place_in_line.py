"""Place in line (issue 13 point 1) through the real pipeline: HTTP → Kafka → bridge (enters the
Redis line after its commit) → Celery worker (leaves it in its outcome script).

With allocation held back (the worker paused), N requests recorded stand at exactly 0..N-1
people ahead, in Kafka order; a batch decided by the same service the worker runs takes the
head off and everyone behind moves up; then the worker runs and every place disappears with
the decisions."""

from __future__ import annotations

import subprocess  # nosec B404 - runs this repo's own Python with the platform's environment
import sys

import pytest

from tests.e2e.support import REPO_ROOT, Platform, poll
from tests.helpers import Account

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REQUESTS = 12
CAPACITY = 5
HEAD_DECIDED = 4


@pytest.fixture(scope="module")
def host(platform: Platform) -> Account:
    return platform.register("host")


@pytest.fixture(scope="module")
def crowd(platform: Platform) -> list[Account]:
    return platform.seed_guests(REQUESTS, prefix="e2eline")


def places(platform: Platform, request_ids: list[str]) -> list[dict | None]:
    replies = [platform.status(request_id) for request_id in request_ids]
    assert all(reply.status == 200 for reply in replies), [reply.body for reply in replies]
    return [reply.data["placeInLine"] for reply in replies]


def people_ahead(platform: Platform, request_ids: list[str]) -> list[int | None]:
    return [None if place is None else place.get("peopleAhead") for place in places(platform, request_ids)]


def decide_oldest(platform: Platform, event_id: int, count: int) -> None:
    """One allocation batch of `count`, by the service the worker runs, in the platform's
    environment (its Postgres, its Redis line): as if the worker took a small batch."""
    script = (
        "import wsgi\n"
        "from atomicseats.services import booking\n"
        "with wsgi.app.app_context():\n"
        f"    print(booking.allocate_pending({event_id}, {count}).requests_decided)\n"
    )
    done = subprocess.run(  # nosec B603 - fixed arguments
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=platform.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(count), done.stdout


def test_recorded_requests_stand_in_kafka_order_and_leave_the_line_with_their_decisions(platform, host, crowd):
    event_id = platform.create_event(host, CAPACITY)["id"]
    platform.pause("worker")  # allocation held back: the bridge records, nobody decides
    try:
        # One after the other: Kafka's order (one partition per event) is the order of the 202s.
        request_ids = [platform.book_accepted(guest, event_id, 1) for guest in crowd]
        expected = list(range(REQUESTS))
        poll(lambda: people_ahead(platform, request_ids) == expected, 30, what="every request counted into the line")
        first = places(platform, request_ids)[0]
        assert first == {"queue": "pending", "position": 1, "peopleAhead": 0, "estimatedWaitS": None}
        decide_oldest(platform, event_id, HEAD_DECIDED)
        moved_up = [None] * HEAD_DECIDED + list(range(REQUESTS - HEAD_DECIDED))
        assert people_ahead(platform, request_ids) == moved_up
        # The rate counts whole seconds before the current one: the batch shows within a second.
        next_up = request_ids[HEAD_DECIDED]
        poll(lambda: places(platform, [next_up])[0]["estimatedWaitS"] is not None, 5, what="an estimate")
        assert places(platform, [next_up])[0]["estimatedWaitS"] >= 1
    finally:
        platform.resume("worker")
    final = platform.wait_until_all_final(request_ids, timeout_s=60)
    statuses = [final[request_id]["status"] for request_id in request_ids]
    assert statuses == ["confirmed"] * CAPACITY + ["waitlisted"] * (REQUESTS - CAPACITY)
    placed = places(platform, request_ids)
    assert placed[:CAPACITY] == [None] * CAPACITY  # decided: out of the line, nothing to show
    assert [place["queue"] for place in placed[CAPACITY:]] == ["waitlist"] * (REQUESTS - CAPACITY)
    assert [place["position"] for place in placed[CAPACITY:]] == list(range(1, REQUESTS - CAPACITY + 1))
    code, output = platform.run_audit()
    assert code == 0 and "audit clean" in output, output
