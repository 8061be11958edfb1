"""Every process's Prometheus endpoint during an end-to-end run: the API's /metrics (its
granian workers added up), the bridge's, the allocation worker's and the mailer's, on the
ports scripts/platform.sh gives them; after a few bookings their counters have moved."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import REPO_ROOT, Platform, decision_message_id, poll

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


PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")  # scripts/ensure_prometheus.sh


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prometheus_query(base_url: str, query: str) -> list[dict]:
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own loopback Prometheus
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def test_prometheus_scrapes_the_stack_and_reads_the_accepted_rate_after_a_flash_sale(platform: Platform, tmp_path):
    """Debian's Prometheus with the jobs of deploy/prometheus/prometheus.yml, pointed at this stack."""
    assert os.access(PROMETHEUS, os.X_OK), f"{PROMETHEUS} missing: scripts/ensure_prometheus.sh installs it"
    deployed = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    urls = endpoints(platform)
    for job in deployed["scrape_configs"]:
        target = urllib.parse.urlsplit(urls[job["job_name"]])
        job["static_configs"] = [{"targets": [target.netloc]}]
    deployed["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(deployed))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "prometheus.log").open("w")
    server = subprocess.Popen(  # noqa: S603 - a fixed binary and our own arguments
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        poll(lambda: _answers(f"{base_url}/-/ready"), 60, 0.5, "Prometheus ready")
        poll(
            lambda: len(prometheus_query(base_url, "up == 1")) == 4,
            60,
            1,
            "Prometheus scraping the api, bridge, worker and mailer",
        )
        host = platform.register("host")
        guests = [platform.register() for _ in range(4)]
        event_id = platform.create_event(host, capacity=10)["id"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            request_ids = list(pool.map(lambda n: platform.book_accepted(guests[n % 4], event_id, 1), range(16)))
        platform.wait_until_all_final(request_ids, timeout_s=60)

        def rate_of(query: str) -> float:
            result = prometheus_query(base_url, query)
            return float(result[0]["value"][1]) if result else 0.0

        accepted = poll(
            lambda: rate_of("sum(increase(atomicseats_booking_requests_accepted_total[1m]))"),
            60,
            1,
            "the accepted rate",
        )
        assert accepted > 0
        assert poll(lambda: rate_of("sum(rate(atomicseats_booking_requests_accepted_total[1m]))"), 30, 1, "rate")
        assert poll(lambda: rate_of("sum(rate(atomicseats_booking_requests_decided_total[1m]))"), 30, 1, "decided")
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False
