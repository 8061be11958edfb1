"""The bridge's offset commits (atomicseats/bridge.py OffsetKeeper): only what is recorded, as
explicit offsets, at most every interval. The consumer here only records the commits it is
asked for; the e2e tests (tests/e2e/test_bridge_batching.py, test_faults.py) run the bridge on
a real broker and wait for its group's committed offsets."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import TopicPartition

from atomicseats.bridge import OffsetKeeper

TOPIC = "booking-requests"


@dataclass
class Message:
    _partition: int
    _offset: int

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


@dataclass
class CommitLog:
    commits: list[list[tuple[int, int]]] = field(default_factory=list)

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert asynchronous
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])


def test_the_first_batch_after_a_quiet_spell_is_committed_at_once_then_at_most_every_interval():
    keeper, consumer = OffsetKeeper(TOPIC, interval_s=0.25), CommitLog()
    keeper.recorded([Message(0, 10), Message(0, 11), Message(3, 7)])
    keeper.commit_due(consumer, now=100.0)
    assert consumer.commits == [[(0, 12), (3, 8)]]  # the next message to read, per partition

    keeper.recorded([Message(0, 12)])
    keeper.commit_due(consumer, now=100.1)  # too soon: kept
    keeper.recorded([Message(0, 13), Message(1, 4)])
    keeper.commit_due(consumer, now=100.2)
    assert len(consumer.commits) == 1
    keeper.commit_due(consumer, now=100.25)  # both batches in one commit
    assert consumer.commits[1] == [(0, 14), (1, 5)]
    keeper.commit_due(consumer, now=101.0)  # nothing recorded since: nothing to commit
    assert len(consumer.commits) == 2


def test_only_recorded_batches_are_committed_never_the_consumers_position():
    keeper, consumer = OffsetKeeper(TOPIC, interval_s=10), CommitLog()
    keeper.recorded([Message(2, 5)])
    keeper.commit_due(consumer, now=0.0)
    # A batch read but not recorded (the bridge was stopped before it was durable) is never passed
    # to `recorded`: leaving commits only what was, and those messages are read again.
    keeper.commit(consumer)
    assert consumer.commits == [[(2, 6)]]


def test_a_revoked_partition_is_committed_before_it_goes_and_a_lost_one_is_forgotten():
    keeper, consumer = OffsetKeeper(TOPIC, interval_s=10), CommitLog()
    keeper.commit_due(consumer, now=0.0)  # nothing yet
    keeper.recorded([Message(0, 1), Message(1, 1), Message(2, 1)])
    keeper.commit(consumer, [1])  # revoked: its offset now, the others wait for their turn
    assert consumer.commits == [[(1, 2)]]
    keeper.forget([2])  # lost: another member owns it now, committing for it could move it back
    keeper.commit(consumer)
    assert consumer.commits == [[(1, 2)], [(0, 2)]]


def test_a_redelivered_older_message_never_moves_an_offset_back():
    keeper, consumer = OffsetKeeper(TOPIC, interval_s=0), CommitLog()
    keeper.recorded([Message(0, 9), Message(0, 4)])
    keeper.commit_due(consumer, now=0.0)
    assert consumer.commits == [[(0, 10)]]
