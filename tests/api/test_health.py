"""Readiness names the schema's migrations (and Kafka in Kafka mode: tests/e2e/test_metrics.py);
`flask health <process>` checks the bridge, a worker, the mailer and beat."""

from __future__ import annotations

import os
import socket
import time

from sqlalchemy import text

from atomicseats.adapters.kafka import KafkaProbe, ProducerSettings, SharedProducer
from atomicseats.adapters.metrics import serve_metrics
from atomicseats.extensions import db
from atomicseats.names import BOOKING_REQUESTS_TOPIC
from atomicseats.services.readiness import head_revisions


def test_readiness_reports_the_database_at_the_head_migration(app, client):
    response = client.get("/readyz")
    assert response.status_code == 200
    checks = response.get_json()["checks"]
    assert checks["database"] is True and checks["migrations"] is True, checks


def test_a_database_behind_the_code_s_migrations_is_not_ready(app, client):
    (head,) = head_revisions(app.extensions["migrate"].directory)
    db.session.execute(text("UPDATE alembic_version SET version_num = 'an_older_one'"))
    db.session.commit()
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        checks = response.get_json()["checks"]
        assert checks["database"] is True and checks["migrations"] is False, checks
    finally:  # the PostgreSQL test database is the session's
        db.session.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
        db.session.commit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_kafka_probe_reports_an_unreachable_broker_quickly():
    producer = SharedProducer(ProducerSettings(f"127.0.0.1:{free_port()}"))
    try:
        started = time.monotonic()
        assert KafkaProbe(producer, BOOKING_REQUESTS_TOPIC, 0.5).ping() is False
        assert time.monotonic() - started < 5
    finally:
        producer.close(timeout_s=0.5)


def test_health_of_a_process_is_its_metrics_endpoint_answering(app):
    runner = app.test_cli_runner()
    port = free_port()
    refused = runner.invoke(args=["health", "worker", "--port", str(port)])
    assert refused.exit_code == 1 and "does not answer" in refused.output, refused.output
    app.config["METRICS_PORT"] = port
    server = serve_metrics(app)
    try:
        for process in ("bridge", "worker", "mailer"):
            answered = runner.invoke(args=["health", process])
            assert answered.exit_code == 0 and f"{process} healthy" in answered.output, answered.output
    finally:
        server.shutdown()
        server.server_close()
    unset = app.test_cli_runner()
    app.config["METRICS_PORT"] = 0
    assert "METRICS_PORT" in unset.invoke(args=["health", "mailer"]).output


def test_health_of_beat_is_a_recent_heartbeat(app, tmp_path):
    runner = app.test_cli_runner()
    heartbeat = tmp_path / "beat.heartbeat"
    app.config["BEAT_HEARTBEAT_FILE"] = str(heartbeat)
    missing = runner.invoke(args=["health", "beat"])
    assert missing.exit_code == 1 and "no heartbeat" in missing.output, missing.output
    heartbeat.touch()
    assert runner.invoke(args=["health", "beat"]).exit_code == 0
    long_ago = time.time() - 120
    os.utime(heartbeat, (long_ago, long_ago))
    stale = runner.invoke(args=["health", "beat"])
    assert stale.exit_code == 1 and "last heartbeat" in stale.output, stale.output
