"""The bridge notices when it has stopped taking the requests that wait for it (on the real broker).

A consumer can stay alive and silent while messages wait on its partitions (a client stuck after
its broker restarted). The bridge reads, every few seconds, how many messages wait behind its
positions (holding no partition: behind its group's committed offsets); when some have waited
BRIDGE_STALL_S with the offsets standing still it logs `bridge.stalled` and exits for its
supervisor to start a fresh one. Here a paused consumer plays the stuck one, on a topic of the
test's own, and the same consumer reading on is the negative control.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from atomicseats.bridge import LagReader, _is_stalled, consumer_config
from atomicseats.liveness import StallWatch
from tests.e2e.support import poll, unique

pytestmark = pytest.mark.e2e

STALL_S = 1.0
OBSERVE_FOR_S = 4 * STALL_S
FETCH_HELD_S = 2.5  # how long the broker keeps an empty fetch (fetch.wait.max.ms) in the test below


@pytest.fixture
def topic(platform) -> Iterator[str]:
    brokers = platform.env["KAFKA_BROKERS"]
    admin = AdminClient({"bootstrap.servers": brokers, "log_level": 2})
    name = unique("liveness-")
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result()
    yield name
    admin.delete_topics([name], operation_timeout=30)[name].result()


def consumer_of(brokers: str, topic: str, group: str, settings: dict | None = None) -> Consumer:
    consumer = Consumer({**consumer_config(brokers), "group.id": group, "log_level": 2, **(settings or {})})
    consumer.subscribe([topic])
    return consumer


def produce(brokers: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": brokers, "log_level": 2})
    for index in range(count):
        producer.produce(topic, value=b"x", partition=index % 2)
    assert producer.flush(10) == 0


def assigned(consumer: Consumer, count: int) -> list[TopicPartition]:
    def holds() -> list[TopicPartition] | None:
        consumer.consume(num_messages=100, timeout=0.2)
        partitions = consumer.assignment()
        return partitions if len(partitions) == count else None

    return poll(holds, 30, 0, f"{count} partition(s) assigned")


def read_all(consumer: Consumer, reader: LagReader) -> None:
    def caught_up() -> bool:
        consumer.consume(num_messages=100, timeout=0.2)
        lag = reader.read(consumer)
        return lag is not None and lag.waiting == 0

    poll(caught_up, 30, 0, "the consumer caught up")


def watched(consumer: Consumer, reader: LagReader, keep_reading: bool) -> bool:
    """Whether the stall watch fires within OBSERVE_FOR_S (as run_bridge checks, more often)."""
    watch = StallWatch(STALL_S)
    deadline = time.monotonic() + OBSERVE_FOR_S
    while time.monotonic() < deadline:
        if keep_reading:
            consumer.consume(num_messages=1, timeout=0.1)  # slowly: the lag stays while offsets move
        if _is_stalled(consumer, reader, watch, time.monotonic()):
            return True
        time.sleep(0.1)
    return False


def test_a_consumer_that_stops_reading_while_messages_wait_is_stalled(platform, topic, caplog):
    brokers = platform.env["KAFKA_BROKERS"]
    group = unique("liveness-group-")
    consumer = consumer_of(brokers, topic, group)
    reader = LagReader(brokers, topic, group)
    try:
        partitions = assigned(consumer, 2)
        produce(brokers, topic, 4)
        read_all(consumer, reader)
        assert not watched(consumer, reader, keep_reading=False), "nothing waits: never a stall"

        produce(brokers, topic, 30)
        consumer.pause(partitions)
        with caplog.at_level(logging.ERROR, logger="atomicseats.bridge"):
            assert watched(consumer, reader, keep_reading=False), "30 messages waited and nothing moved"
        lag = reader.read(consumer)
        assert lag is not None and lag.waiting == 30 and lag.assigned == [0, 1]
        assert lag.by_partition == {0: 15, 1: 15}
        assert any(record.msg == "bridge.stalled" for record in caplog.records)

        # The negative control: the same consumer reading on (one message at a time) is never stalled.
        consumer.resume(partitions)
        assert not watched(consumer, reader, keep_reading=True)
    finally:
        consumer.close()


def test_a_bridge_holding_no_partition_watches_its_whole_group(platform, topic):
    """A member with nothing assigned cannot read its way out; it counts what waits behind the
    group's committed offsets, and a group whose offsets stand still is stalled."""
    brokers = platform.env["KAFKA_BROKERS"]
    group = unique("liveness-group-")
    holder = consumer_of(brokers, topic, group)
    reader = LagReader(brokers, topic, group)
    try:
        partitions = assigned(holder, 2)
        holder.pause(partitions)
        idle = Consumer({**consumer_config(brokers), "group.id": group, "log_level": 2})
        try:
            idle.assign([])  # in the group's name, holding nothing: reads the group's committed offsets
            produce(brokers, topic, 6)
            lag = poll(lambda: (lag := reader.read(idle)) and lag.waiting == 6 and lag, 30, 0.2, "lag of 6")
            assert lag.assigned == [] and lag.by_partition == {}
            assert watched(idle, reader, keep_reading=False)

            holder.resume(partitions)
            read_all(holder, reader)
            holder.commit(asynchronous=False)
            assert reader.read(idle).waiting == 0
            assert not watched(idle, reader, keep_reading=False), "the group caught up: nothing waits"
        finally:
            idle.close()
    finally:
        holder.close()


def test_the_lag_is_read_without_waiting_behind_the_consumer_s_fetch(platform, topic):
    """The broker answers a connection's requests in turn, and a consumer's connection nearly
    always has a fetch waiting there for a message (here up to FETCH_HELD_S). The lag reader
    asks on a connection of its own, so the bridge's liveness check does not hold its loop."""
    brokers = platform.env["KAFKA_BROKERS"]
    group = unique("liveness-group-")
    consumer = consumer_of(brokers, topic, group, {"fetch.min.bytes": 1, "fetch.wait.max.ms": int(FETCH_HELD_S * 1000)})
    reader = LagReader(brokers, topic, group)
    try:
        assigned(consumer, 2)
        produce(brokers, topic, 4)
        read_all(consumer, reader)  # every message read: from now on each fetch waits at the broker
        consumer.consume(num_messages=1, timeout=0.2)

        started = time.monotonic()
        lag = reader.read(consumer)
        assert lag is not None and lag.waiting == 0 and lag.assigned == [0, 1]
        assert time.monotonic() - started < FETCH_HELD_S / 2

        # The negative control: the same question on the consumer's connection waits behind its
        # fetches (the second partition's behind a whole one, sent after the first answer).
        started = time.monotonic()
        for partition in (0, 1):
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
        assert time.monotonic() - started >= FETCH_HELD_S / 2
    finally:
        consumer.close()
