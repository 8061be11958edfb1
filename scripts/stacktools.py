"""Helpers shared by the tools that drive a local stack: `make bench` (scripts/bench/) and
the end-to-end tests (tests/e2e). Not part of the application."""

from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from atomicseats.names import BRIDGE_CONSUMER_GROUP, TOPICS


def parse_exports(text: str) -> dict[str, str]:
    """`export NAME=value` lines (services.sh env, platform.sh env, secrets.env) as a dict."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export ") :].split("=", 1)
            values[name] = value.strip("'\"")
    return values


def recreate_topics(brokers: str, timeout_s: float = 90) -> None:
    """Delete and re-create our topics empty, and forget the bridge's consumer group, so no
    message of an earlier run can leak in; return once every partition has a leader.
    RuntimeError if the broker does not get there within `timeout_s`."""
    admin = AdminClient({"bootstrap.servers": brokers, "log_level": 2})
    deadline = time.monotonic() + timeout_s
    try:
        admin.delete_consumer_groups([BRIDGE_CONSUMER_GROUP], request_timeout=15)[BRIDGE_CONSUMER_GROUP].result()
    except KafkaException as error:
        if error.args[0].code() not in (KafkaError.GROUP_ID_NOT_FOUND, KafkaError.NON_EMPTY_GROUP):
            raise RuntimeError(f"cannot delete consumer group {BRIDGE_CONSUMER_GROUP}: {error}") from error
    existing = set(admin.list_topics(timeout=15).topics)
    doomed = [topic for topic in TOPICS if topic in existing]
    if doomed:
        for topic, future in admin.delete_topics(doomed, operation_timeout=30, request_timeout=30).items():
            try:
                future.result()
            except KafkaException as error:
                if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise RuntimeError(f"cannot delete topic {topic}: {error}") from error
    # Deletion completes asynchronously: creating too early says the topic still exists.
    pending = dict(TOPICS)
    while pending:
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=count, replication_factor=1) for topic, count in pending.items()],
            operation_timeout=30,
            request_timeout=30,
        )
        for topic, future in futures.items():
            try:
                future.result()
                pending.pop(topic)
            except KafkaException as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cannot re-create topic {topic}: {error}") from error
        if pending:
            time.sleep(0.5)
    while not _have_leaders(admin):
        if time.monotonic() > deadline:
            raise RuntimeError(f"re-created topics {sorted(TOPICS)} have no leaders")
        time.sleep(0.2)


def _have_leaders(admin: AdminClient) -> bool:
    metadata = admin.list_topics(timeout=10).topics
    return all(
        topic in metadata
        and metadata[topic].error is None
        and len(metadata[topic].partitions) == count
        and all(partition.leader >= 0 for partition in metadata[topic].partitions.values())
        for topic, count in TOPICS.items()
    )
