"""One home for the platform's names (atomicseats/names.py): the Celery tasks are registered
under them, the shell scripts get them from the module's command line, and docker-compose.yml,
which cannot ask Python, uses the same ones (read here as text: no YAML parser needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from atomicseats import names

ROOT = Path(__file__).resolve().parent.parent


def compose_services() -> dict[str, str]:
    """docker-compose.yml's `services:` section as {service name: its block of text}."""
    text = (ROOT / "docker-compose.yml").read_text()
    section = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    blocks = re.split(r"^  ([a-z][a-z0-9_-]*):\n", section, flags=re.MULTILINE)
    return dict(zip(blocks[1::2], blocks[2::2], strict=True))


def compose_queues(service: str) -> list[str]:
    match = re.search(r'"--queues=([^"]+)"', compose_services()[service])
    assert match, f"no --queues= in the compose service {service}"
    return match.group(1).split(",")


def names_cli(*args: str) -> str:
    """Run atomicseats/names.py by its path, as the shell scripts do."""
    return subprocess.run(
        [sys.executable, str(ROOT / "atomicseats" / "names.py"), *args], capture_output=True, text=True, check=True
    ).stdout


def test_compose_workers_consume_the_queues_of_the_names_module():
    assert compose_queues("worker") == names.worker_queues("allocation", names.BOOKING_REQUESTS_PARTITIONS)
    assert compose_queues("mailer") == names.worker_queues("notifications")


def test_compose_partition_counts_are_the_names_modules():
    text = (ROOT / "docker-compose.yml").read_text()
    # The app's KAFKA_PARTITIONS, and the broker's default for the topics it creates on first use.
    assert re.findall(r'^\s+KAFKA_PARTITIONS: "(\d+)"$', text, flags=re.MULTILINE) == [
        str(names.BOOKING_REQUESTS_PARTITIONS)
    ]
    assert re.findall(r"^\s+KAFKA_NUM_PARTITIONS: (\d+)$", text, flags=re.MULTILINE) == [
        str(names.BOOKING_REQUESTS_PARTITIONS)
    ]


def test_compose_names_no_queue_or_topic_the_module_does_not_know():
    text = (ROOT / "docker-compose.yml").read_text()
    known_queues = set(names.worker_queues("all"))
    for queue in re.findall(r"--queues=([^\"\s]+)", text):
        assert set(queue.split(",")) <= known_queues
    for topic in re.findall(r"\bbooking-[a-z]+\b", text):
        assert topic in names.TOPICS


def test_the_command_line_prints_topics_queues_and_tasks():
    topics = dict(line.split() for line in names_cli("topics").splitlines())
    assert {topic: int(count) for topic, count in topics.items()} == names.TOPICS
    assert names_cli("queues", "allocation", "--partitions", "2").strip() == "alloc.p0,alloc.p1,maintenance"
    assert names_cli("queues").strip().split(",") == names.worker_queues("all")
    assert names_cli("tasks").split() == list(names.TASKS)


def test_every_task_is_registered_under_its_name():
    from atomicseats import tasks

    registered = {
        task.name
        for task in (
            tasks.allocate_event,
            tasks.sweep_pending,
            tasks.send_notifications,
            tasks.publish_domain_events,
            tasks.close_sales,
            tasks.reconcile_caches,
        )
    }
    assert registered == set(names.TASKS)


def test_the_default_partition_count_is_the_names_modules(monkeypatch):
    from config import BaseConfig

    monkeypatch.delenv("KAFKA_PARTITIONS", raising=False)
    assert BaseConfig().KAFKA_PARTITIONS == names.BOOKING_REQUESTS_PARTITIONS
