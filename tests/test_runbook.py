"""The README's backup, restore and Kafka replay runbook names what the code and scripts use
(issue 11 point 7): the bridge's group and topic from names.py, the `make up` ports of
scripts/services.sh, the jars that hold kafka-consumer-groups' class, the compose services."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from atomicseats import names

ROOT = Path(__file__).resolve().parent.parent


def runbook() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n### Back up and restore\n", 1)[1].split("\n### ", 1)[0]


def test_the_replay_resets_the_bridge_group_of_the_requests_topic():
    text = runbook()
    commands = [line for line in text.splitlines() if "--reset-offsets" in line]
    assert len(commands) == 2  # make up and compose
    for command in commands:
        assert f"--group {names.BRIDGE_CONSUMER_GROUP} " in command
        assert f"--topic {names.BOOKING_REQUESTS_TOPIC} " in command
        assert "--to-datetime " in command and "--execute" in command


def test_make_up_commands_use_the_dev_stack_ports_and_the_jars_the_scripts_resolve():
    services = (ROOT / "scripts/services.sh").read_text()
    pg_port = int(re.search(r"PG_PORT=\$\(\((\d+) \+ PORT_OFFSET\)\)", services).group(1))
    kafka_port = int(re.search(r"KAFKA_PORT=\$\(\((\d+) \+ PORT_OFFSET\)\)", services).group(1))
    text = runbook()
    for tool in ("pg_dump", "dropdb", "createdb", "pg_restore"):
        assert re.search(rf"PGPASSWORD=atomicseats {tool} -h 127.0.0.1 -p {pg_port} ", text), tool
    assert f"--bootstrap-server 127.0.0.1:{kafka_port} " in text
    assert "KAFKA_LIBS=$CACHE/kafka-libs" in (ROOT / "scripts/services/kafka.sh").read_text()
    assert re.search(r"^CACHE=\$ROOT/\.cache$", services, flags=re.MULTILINE)
    assert "java -cp '.cache/kafka-libs/*' org.apache.kafka.tools.consumer.group.ConsumerGroupCommand" in text
    pom = (ROOT / "scripts/services/kafka/pom.xml").read_text()
    assert "<artifactId>kafka-tools</artifactId>" in pom  # the jar of ConsumerGroupCommand


def test_compose_commands_name_its_services_and_credentials():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    postgres = compose["services"]["postgres"]["environment"]
    text = runbook()
    assert f"pg_dump -U {postgres['POSTGRES_USER']} -d {postgres['POSTGRES_DB']} -Fc" in text
    assert "docker compose exec -T postgres pg_restore" in text
    kafka = compose["services"]["kafka"]
    assert "kafka:9092" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert "docker compose exec kafka /opt/kafka/bin/kafka-consumer-groups.sh --bootstrap-server kafka:9092" in text
    assert "/opt/kafka/bin/" in str(kafka["healthcheck"]["test"])  # the image's tools live there
    for service in ("api", "bridge", "worker", "mailer", "beat"):
        assert service in compose["services"]
