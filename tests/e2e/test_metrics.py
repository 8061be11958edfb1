"""Every process's Prometheus endpoint during an end-to-end run: the API's /metrics (its
granian workers added up), the bridge's, the allocation worker's and the mailer's, on the
ports scripts/platform.sh gives them; after a few bookings their counters have moved."""

from __future__ import annotations

import urllib.parse
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import Platform, decision_message_id, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own loopback stack
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def series(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: number for (sample_name, labels), number in samples.items() if sample_name == name}


def endpoints(platform: Platform) -> dict[str, str]:
    env = platform.env
    return {
        "api": f"{platform.api_url}/metrics",
        "bridge": env["BRIDGE_METRICS_URL"],
        "worker": env["WORKER_METRICS_URL"],
        "mailer": env["MAILER_METRICS_URL"],
    }


def port_of(url: str) -> str:
    return str(urllib.parse.urlsplit(url).port)


def test_every_process_serves_metrics_and_they_count_the_bookings(platform: Platform):
    urls = endpoints(platform)
    before = {proc: scrape(url) for proc, url in urls.items()}
    host = platform.register("host")
    guests = [platform.register() for _ in range(3)]
    event_id = platform.create_event(host, capacity=3)["id"]
    request_ids = [platform.book_accepted(guest, event_id, 2) for guest in guests]  # 2, 1 + 1 waiting, 2 waiting
    outcomes = {request_id: platform.wait_final(request_id)["status"] for request_id in request_ids}
    assert sorted(outcomes.values()) == ["confirmed", "partial", "waitlisted"]
    platform.wait_for_mails([decision_message_id(status, rid) for rid, status in outcomes.items()], timeout_s=60)

    def moved(proc: str, name: str, **labels: str) -> float:
        return value(now[proc], name, **labels) - value(before[proc], name, **labels)

    def all_moved() -> bool:
        now.update({proc: scrape(url) for proc, url in urls.items()})
        return (
            moved("api", "atomicseats_booking_requests_accepted_total") == 3
            and sum(moved("worker", "atomicseats_booking_requests_decided_total", outcome=o) for o in outcomes.values())
            == 3
            and moved("mailer", "atomicseats_notifications_sent_total") >= 3
            and bool(series(now["bridge"], "atomicseats_kafka_consumer_lag"))
        )

    now: dict[str, Samples] = {}
    poll(all_moved, 30, 0.5, "every endpoint's counters moved")
    # The API: three 202s on the booking route, summed over its worker processes.
    book_route = {"route": "/api/events/book", "method": "POST", "status": "202"}
    assert moved("api", "atomicseats_http_requests_total", **book_route) == 3
    assert moved("api", "atomicseats_http_request_duration_seconds_count", **book_route) == 3
    # The allocation worker: one decision per outcome, each timed from its 202.
    for outcome in ("confirmed", "partial", "waitlisted"):
        assert moved("worker", "atomicseats_booking_requests_decided_total", outcome=outcome) == 1, outcome
    assert moved("worker", "atomicseats_booking_decision_seconds_count") == 3
    assert moved("worker", "atomicseats_allocation_batch_size_sum") == 3
    assert moved("worker", "atomicseats_allocation_batch_seconds_count") >= 1
    # The bridge: a lag per partition it holds, nothing waiting once all is decided.
    lag = series(now["bridge"], "atomicseats_kafka_consumer_lag")
    assert all(dict(labels)["partition"].isdigit() for labels in lag), lag
    poll(
        lambda: sum(series(scrape(urls["bridge"]), "atomicseats_kafka_consumer_lag").values()) == 0,
        30,
        1,
        "no lag",
    )
    # The platform's gauges, read from Postgres at the API's scrape.
    gauges = scrape(urls["api"])
    assert value(gauges, "atomicseats_pending_requests") == 0
    assert value(gauges, "atomicseats_waitlist_length", event_id=str(event_id)) == 2
    assert ("atomicseats_outbox_backlog", (("state", "pending"),)) in gauges


def test_readiness_names_kafka_and_migrations_and_every_process_is_healthy(platform: Platform):
    readiness = platform.http.request("GET", "/readyz")
    assert readiness.status == 200, readiness.body
    checks = readiness.body["checks"]
    assert checks == {"database": True, "migrations": True, "redis": True, "kafka": True}, checks
    for process in ("bridge", "worker", "mailer"):
        code, output = platform.flask("health", process, "--port", port_of(endpoints(platform)[process]))
        assert code == 0 and f"{process} healthy" in output, output
    code, output = platform.flask("health", "beat")
    assert code == 0 and "beat healthy" in output, output
    platform.platform_sh("stop", "mailer")
    try:  # (its Celery process may still be finishing its warm shutdown when the script returns)
        mailer_port = port_of(endpoints(platform)["mailer"])
        code, output = poll(
            lambda: (answer := platform.flask("health", "mailer", "--port", mailer_port))[0] != 0 and answer,
            60,
            1,
            "the stopped mailer found unhealthy",
        )
        assert code == 1 and "does not answer" in output, output
    finally:
        platform.platform_sh("start", "mailer", timeout_s=300)
