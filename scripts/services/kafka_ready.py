"""Kafka readiness for scripts/services.sh (run with the project venv's Python):

    kafka_ready.py <brokers> <timeout-s> ["<topic> <partitions>"...]

Waits until the broker serves metadata, creates the topics (the lines of
`python atomicseats/names.py topics`; without any, it asks atomicseats/names.py itself, as
the `kafka-topics` service of docker-compose.yml runs it), loads the group coordinator and the idempotent
producer's first id block (so the first test or request does not pay for them), and returns
once every partition has a leader. Exits non-zero with the reason when the deadline passes.
"""

from __future__ import annotations

import logging
import runpy
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

WARMUP_GROUP = "atomicseats-services-warmup"


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def check(self, failure: str) -> None:
        if self.left() < 0:
            sys.exit(failure)


def metadata(admin: AdminClient, deadline: Deadline):
    return admin.list_topics(timeout=min(5.0, max(0.5, deadline.left())))


def wait_for_broker(admin: AdminClient, deadline: Deadline) -> None:
    while True:
        try:
            if metadata(admin, deadline).brokers:
                return
        except KafkaException:
            pass
        deadline.check("broker does not answer metadata requests")
        time.sleep(0.2)


def create_topics(admin: AdminClient, topics: dict[str, int]) -> None:
    new = [NewTopic(topic, num_partitions=count, replication_factor=1) for topic, count in topics.items()]
    for name, future in admin.create_topics(new, operation_timeout=30, request_timeout=30).items():
        try:
            future.result()
            print(f"created topic {name} ({topics[name]} partitions)")
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                sys.exit(f"cannot create topic {name}: {exc}")


def load_group_coordinator(admin: AdminClient, deadline: Deadline) -> None:
    """First start: creates __consumer_offsets, so the first consumer of a test does not pay for it."""
    while True:
        try:
            admin.describe_consumer_groups([WARMUP_GROUP], request_timeout=10)[WARMUP_GROUP].result()
            return
        except KafkaException:
            deadline.check("group coordinator not available")
            time.sleep(0.2)


def load_producer_ids(brokers: str, deadline: Deadline) -> None:
    """Until the broker allocates its first producer-id block, an idempotent producer (acks=all,
    as the API uses) gets COORDINATOR_LOAD_IN_PROGRESS and retries for ~1 s."""
    assigned = threading.Event()

    class PidWatch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "-> Assigned" in record.getMessage():
                assigned.set()

    log = logging.getLogger("services.kafka.warmup")
    log.addHandler(PidWatch())
    log.setLevel(logging.DEBUG)
    log.propagate = False
    config = {"bootstrap.servers": brokers, "enable.idempotence": True, "debug": "eos", "logger": log, "log_level": 7}
    producer = Producer(config)
    while not assigned.is_set():
        producer.poll(0.05)
        deadline.check("idempotent producer could not get a producer id")
    del producer


def wait_for_leaders(admin: AdminClient, topics: dict[str, int], deadline: Deadline) -> None:
    while True:
        found = metadata(admin, deadline).topics
        if all(
            topic in found
            and found[topic].error is None
            and found[topic].partitions
            and all(partition.leader >= 0 for partition in found[topic].partitions.values())
            for topic in topics
        ):
            return
        deadline.check("topics have no leaders yet")
        time.sleep(0.2)


def names_module_topics() -> dict[str, int]:
    """The topics and partition counts of atomicseats/names.py (stdlib only, loaded by path)."""
    path = Path(__file__).resolve().parents[2] / "atomicseats" / "names.py"
    return dict(runpy.run_path(str(path))["TOPICS"])


def main(argv: list[str]) -> None:
    brokers, timeout_s, topic_lines = argv[0], float(argv[1]), argv[2:]
    topics = {name: int(count) for name, count in (line.split() for line in topic_lines)} or names_module_topics()
    deadline = Deadline(timeout_s)
    # log_level 2: keep librdkafka's connection-refused chatter out of our output
    admin = AdminClient({"bootstrap.servers": brokers, "log_level": 2})
    wait_for_broker(admin, deadline)
    create_topics(admin, topics)
    load_group_coordinator(admin, deadline)
    load_producer_ids(brokers, deadline)
    wait_for_leaders(admin, topics, deadline)


if __name__ == "__main__":
    main(sys.argv[1:])
