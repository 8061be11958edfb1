"""One home for the platform's names (atomicseats/names.py): the Celery tasks are registered
under them and the shell scripts get them from the module's command line. docker-compose.yml
asks them too (its worker queues, its topics): tests/test_compose.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from atomicseats import names

ROOT = Path(__file__).resolve().parent.parent


def names_cli(*args: str) -> str:
    """Run atomicseats/names.py by its path, as the shell scripts do."""
    return subprocess.run(
        [sys.executable, str(ROOT / "atomicseats" / "names.py"), *args], capture_output=True, text=True, check=True
    ).stdout


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
            tasks.allocate_events,
            tasks.sweep_pending,
            tasks.send_notifications,
            tasks.publish_domain_events,
            tasks.close_sales,
            tasks.expire_offers,
            tasks.reconcile_caches,
            tasks.purge,
        )
    }
    assert registered == set(names.TASKS)


def test_the_default_partition_count_is_the_names_modules(monkeypatch):
    from config import BaseConfig

    monkeypatch.delenv("KAFKA_PARTITIONS", raising=False)
    assert BaseConfig().KAFKA_PARTITIONS == names.BOOKING_REQUESTS_PARTITIONS
