"""The bridge's batching on the real broker: a lone request is taken on its own, at once; what
arrived together is taken together (atomicseats/batching.py, with the bridge's consumer settings).

Behaviour, not milliseconds: a wrapper around a real consumer counts the calls. The only call
that may wait asks for one message, so nothing ever waits for a batch to fill; the call that
follows asks for the rest without waiting.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from atomicseats.batching import next_batch
from atomicseats.bridge import CONSUME_BATCH_MAX, consumer_config
from tests.e2e.support import poll, unique

pytestmark = pytest.mark.e2e

LONG_WAIT_S = 30.0  # far longer than the test may take: a call that waited it out would show


class Counting:
    """A real consumer whose consume calls are recorded: (asked for, timeout, got)."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.calls: list[tuple[int, float, int]] = []

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        messages = [m for m in self.consumer.consume(num_messages=num_messages, timeout=timeout) if not m.error()]
        self.calls.append((num_messages, timeout, len(messages)))
        return messages


@pytest.fixture
def brokers(platform) -> str:
    return platform.env["KAFKA_BROKERS"]


@pytest.fixture
def topic(brokers) -> Iterator[str]:
    admin = AdminClient({"bootstrap.servers": brokers, "log_level": 2})
    name = unique("batching-")
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result()
    yield name
    admin.delete_topics([name], operation_timeout=30)[name].result()


@pytest.fixture
def consumer(brokers, topic) -> Iterator[Counting]:
    consumer = Consumer({**consumer_config(brokers), "group.id": unique("batching-group-"), "log_level": 2})
    consumer.subscribe([topic])
    yield Counting(consumer)
    consumer.close()


def produce(brokers: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": brokers, "log_level": 2})
    for value in values:
        producer.produce(topic, value=value)
    assert producer.flush(10) == 0


def batches_until(consumer: Counting, count: int) -> list[list[bytes]]:
    batches: list[list[bytes]] = []

    def gathered() -> bool:
        batch = next_batch(consumer, CONSUME_BATCH_MAX, LONG_WAIT_S)
        if batch:
            batches.append([message.value() for message in batch])
        return sum(len(batch) for batch in batches) >= count

    poll(gathered, 60, 0, f"{count} message(s)")
    return batches


def test_messages_that_wait_together_come_in_one_batch_and_a_lone_one_alone(consumer, brokers, topic):
    waiting = [f"waiting-{index}".encode() for index in range(20)]
    produce(brokers, topic, waiting)  # in the log before the consumer's first fetch
    assert batches_until(consumer, len(waiting)) == [waiting]

    consumer.calls.clear()
    produce(brokers, topic, [b"lone"])
    assert batches_until(consumer, 1) == [[b"lone"]]
    # It waited for one message only, then took what was buffered (nothing) without waiting.
    assert consumer.calls == [(1, LONG_WAIT_S, 1), (CONSUME_BATCH_MAX - 1, 0, 0)]
