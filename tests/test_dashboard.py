"""The Grafana dashboard and the Prometheus scrape configuration in deploy/: every panel's
query names only metrics the platform exports, and the on-sale essentials all have a panel."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client.parser import text_string_to_metric_families

from atomicseats.adapters.metrics import PrometheusMetrics
from atomicseats.services.contracts import PlatformGauges
from tests.conftest import REPO_ROOT

DASHBOARD = REPO_ROOT / "deploy/grafana/dashboards/atomicseats.json"
METRIC_NAME = re.compile(r"\batomicseats_[a-z0-9_]+\b")
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_series() -> set[str]:
    """The series names the platform's metrics render to (counters as `_total`, histograms as
    `_bucket`/`_count`/`_sum`), gauges read from the database included."""
    body, _ = PrometheusMetrics().render(PlatformGauges(0, {"pending": 0}, [(1, 1)]))
    names = set()
    for family in text_string_to_metric_families(body.decode()):
        if family.name.startswith("atomicseats_"):
            names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type])
    return names


def dashboard_queries() -> dict[str, list[str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in dashboard["panels"]}


def test_every_panel_queries_metrics_the_platform_exports():
    exported = exported_series()
    assert "atomicseats_booking_requests_accepted_total" in exported  # the renderer is what we think
    for title, queries in dashboard_queries().items():
        named = {name for query in queries for name in METRIC_NAME.findall(query)}
        assert named, f"panel {title!r} queries no metric of ours"
        assert named <= exported, f"panel {title!r} names unknown metrics: {sorted(named - exported)}"


def test_the_on_sale_essentials_have_a_panel():
    queried = {
        name for queries in dashboard_queries().values() for query in queries for name in METRIC_NAME.findall(query)
    }
    assert {
        "atomicseats_booking_requests_accepted_total",  # accepted/s
        "atomicseats_booking_requests_decided_total",  # decided/s
        "atomicseats_booking_decision_seconds_bucket",  # p50/p99
        "atomicseats_kafka_consumer_lag",
        "atomicseats_pending_requests",
        "atomicseats_outbox_backlog",
        "atomicseats_http_requests_total",  # errors (5xx)
        "atomicseats_notification_send_failures_total",
    } <= queried
    queries = [query for queries in dashboard_queries().values() for query in queries]
    assert any("histogram_quantile(0.5," in query for query in queries)
    assert any("histogram_quantile(0.99," in query and "decision" in query for query in queries)


def test_prometheus_scrapes_every_process_and_grafana_is_provisioned():
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"api", "bridge", "worker", "mailer"}
    datasources = yaml.safe_load((REPO_ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasources["datasources"][0]["uid"]
    dashboard = json.loads(DASHBOARD.read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {uid}
    providers = yaml.safe_load((REPO_ROOT / "deploy/grafana/provisioning/dashboards/atomicseats.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_compose_runs_prometheus_and_grafana_on_the_processes_metrics_ports():
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]}
    assert targets.pop("api") == "api:5000"
    for process, target in targets.items():
        host, port = target.split(":")
        assert host == process and services[process]["environment"]["METRICS_PORT"] == port, process
        assert services[process]["environment"]["METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - on the compose network
        assert services[process]["healthcheck"]["test"] == ["CMD", "flask", "health", process]
    for process in ("api", "worker", "mailer"):  # the processes that fork workers
        assert services[process]["environment"]["PROMETHEUS_MULTIPROC_DIR"] in services[process]["tmpfs"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in services["grafana"]["volumes"]
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
