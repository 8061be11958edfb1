"""Prometheus metrics: the API's /metrics counts what the platform does, and under several
worker processes (prometheus_client's multiprocess mode) their counts add up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO_ROOT
from tests.helpers import account, book, create_event


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_bookings_decisions_and_requests_by_route_are_counted(app, client):
    host = account(client, "host")
    guest = account(client, "guest")
    event_id = create_event(client, host, capacity=2)["id"]
    before = scrape(client)
    book(client, guest, event_id, 1)
    book(client, guest, event_id, 1)
    book(client, guest, event_id, 2)  # nothing left: waitlisted
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("atomicseats_booking_requests_accepted_total") == 3
    assert moved("atomicseats_booking_requests_decided_total", outcome="confirmed") == 2
    assert moved("atomicseats_booking_requests_decided_total", outcome="waitlisted") == 1
    assert moved("atomicseats_booking_decision_seconds_count") == 3
    assert moved("atomicseats_allocation_batch_size_count") == 3  # the embedded pipeline decides one by one
    assert moved("atomicseats_allocation_batch_seconds_count") == 3
    book_route = {"route": "/api/events/book", "method": "POST", "status": "202"}
    assert moved("atomicseats_http_requests_total", **book_route) == 3
    assert moved("atomicseats_http_request_duration_seconds_count", **book_route) == 3
    # The gauges read from the database at the scrape.
    assert value(after, "atomicseats_pending_requests") == 0
    assert value(after, "atomicseats_waitlist_length", event_id=str(event_id)) == 1
    assert ("atomicseats_outbox_backlog", (("state", "pending"),)) in after
    assert moved("atomicseats_notifications_sent_total") == 3  # one e-mail per decision, sent in-process


def test_a_route_label_is_the_rule_not_the_path(app, client):
    client.get("/api/bookings/requests/not-a-real-id")
    client.get("/no/such/page/12345")
    samples = scrape(client)
    routes = {dict(labels).get("route") for name, labels in samples if name == "atomicseats_http_requests_total"}
    assert "/api/bookings/requests/<request_id>" in routes
    assert "<unmatched>" in routes
    assert not any(route and "12345" in route for route in routes)
    assert not any(route and "not-a-real-id" in route for route in routes)


# One API worker process: `requests` GETs of /healthz through the app, in multiprocess mode.
_WORKER = """
import sys
from tests.conftest import make_app
app = make_app(sys.argv[1])
client = app.test_client()
for _ in range(int(sys.argv[2])):
    assert client.get("/healthz").status_code == 200
"""
# A third process answers the scrape, as any granian worker would.
_SCRAPER = """
import sys
from tests.conftest import make_app
app = make_app(sys.argv[1])
with open(sys.argv[2], "wb") as out:  # not stdout: the logs go there
    out.write(app.test_client().get("/metrics").get_data())
"""


def run_worker_process(script: str, multiproc_dir, *args: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout


def test_two_worker_processes_counts_add_up(database_url, tmp_path):
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    run_worker_process(_WORKER, multiproc_dir, database_url, "3")
    run_worker_process(_WORKER, multiproc_dir, database_url, "4")
    files = sorted(path.name for path in multiproc_dir.iterdir())
    assert len({name.rsplit("_", 1)[1] for name in files if name.startswith("counter_")}) == 2, files  # two pids
    scraped = tmp_path / "scraped.txt"
    run_worker_process(_SCRAPER, multiproc_dir, database_url, str(scraped))
    samples = parse(scraped.read_text())
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(samples, "atomicseats_http_requests_total", **healthz) == 7, json.dumps(
        {f"{name}{dict(labels)}": number for (name, labels), number in samples.items() if "http" in name}
    )
    assert value(samples, "atomicseats_http_request_duration_seconds_count", **healthz) == 7
