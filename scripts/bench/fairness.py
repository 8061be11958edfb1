"""Fairness figures (issue 12 point 9): was each request decided in its turn?

The decision order of an event's requests is the id order of their decision e-mails' outbox rows
(kind booking.<outcome>, the request id in the payload): the allocation writes them in the
allocator's order inside a batch, and the batches of one event serialise on its row lock, each
after the one before committed. decided_at cannot order requests: it is one value per batch.

Two reference orders, both recorded by the platform on booking_requests (migration 0003):
  Kafka order       (partition, offset) where the bridge read the request. A request decided
                    after one that came later in the same partition is an inversion: it breaks
                    "outcomes follow Kafka arrival order" (DESIGN.md invariant 4) and must be 0.
  acceptance order  accepted_at, when the API accepted it. Several API processes produce to
                    Kafka at once, so two requests accepted close together may reach Kafka (and
                    be decided) the other way round: reported, with the largest such overtaking.

An inversion is a pair of requests; "overtaken" counts the requests that at least one later
request was decided before. Ties in the reference order are no inversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from scripts.bench.common import fmt
from scripts.bench.stack import Db


def count_inversions(values: list) -> int:
    """Pairs i < j with values[i] > values[j] (merge sort, O(n log n))."""

    def sort(part: list) -> tuple[list, int]:
        if len(part) <= 1:
            return part, 0
        middle = len(part) // 2
        left, left_count = sort(part[:middle])
        right, right_count = sort(part[middle:])
        merged, count, i, j = [], left_count + right_count, 0, 0
        while i < len(left) and j < len(right):
            if right[j] < left[i]:
                merged.append(right[j])
                count += len(left) - i  # every left value still unmerged is greater
                j += 1
            else:
                merged.append(left[i])
                i += 1
        merged.extend(left[i:])
        merged.extend(right[j:])
        return merged, count

    return sort(list(values))[1]


def count_overtaken(values: list) -> int:
    """Positions i with a smaller value somewhere after them."""
    overtaken, smallest_after = 0, None
    for value in reversed(values):
        if smallest_after is not None and smallest_after < value:
            overtaken += 1
        smallest_after = value if smallest_after is None or value < smallest_after else smallest_after
    return overtaken


@dataclass
class Inversions:
    requests: int
    pairs: int  # inverted pairs
    overtaken: int  # requests decided after at least one request that came after them

    @property
    def share(self) -> float:
        """Inverted pairs as a share of all pairs."""
        total = self.requests * (self.requests - 1) // 2
        return self.pairs / total if total else 0.0


def inversions(rows: list[tuple]) -> Inversions:
    """rows: (reference key, decision rank). The decision ranks listed in reference order (ties
    in the reference broken by decision rank, so a tie is never an inversion), then counted."""
    ranks = [rank for _key, rank in sorted(rows)]
    return Inversions(len(ranks), count_inversions(ranks), count_overtaken(ranks))


def kafka_inversions(rows: list[tuple]) -> Inversions:
    """rows: (partition, offset, decision rank); only requests of the same partition compare."""
    by_partition: dict[int, list[tuple]] = {}
    for partition, offset, rank in rows:
        by_partition.setdefault(partition, []).append((offset, rank))
    parts = [inversions(part) for part in by_partition.values()]
    return Inversions(sum(p.requests for p in parts), sum(p.pairs for p in parts), sum(p.overtaken for p in parts))


def largest_overtaking_ms(rows: list[tuple[datetime, int]]) -> float:
    """rows: (accepted_at, decision rank). The longest time by which a request was accepted before
    one decided ahead of it (0 when none was)."""
    largest, latest = 0.0, None
    for accepted_at, _rank in sorted(rows, key=lambda row: row[1]):
        if latest is not None and latest > accepted_at:
            largest = max(largest, (latest - accepted_at).total_seconds() * 1000)
        latest = accepted_at if latest is None or accepted_at > latest else latest
    return largest


@dataclass
class Fairness:
    event_id: int
    decided: int  # requests with a decision e-mail, the ones compared
    partitions: int
    kafka: Inversions
    acceptance: Inversions
    overtaking_ms: float


@dataclass
class RunFairness:
    hot: Fairness | None
    others: list[Fairness] = field(default_factory=list)  # every other event of the run

    def kafka_pairs(self) -> int:
        """Kafka-order inversions over every event of the run: must be 0."""
        return sum(f.kafka.pairs for f in ([self.hot] if self.hot else []) + self.others)

    def lines(self) -> list[str]:
        out = []
        hot = self.hot
        if hot:
            out += [
                f"fairness, hot event ({hot.decided} requests decided, {hot.partitions} partition(s); decision order ="
                " id order of the decision e-mails):",
                f"  against Kafka order: {hot.kafka.pairs} inverted pairs, {hot.kafka.overtaken} requests "
                f"overtaken (must be 0)",
                f"  against API acceptance order: {hot.acceptance.pairs} inverted pairs "
                f"({100 * hot.acceptance.share:.3f}% of pairs), {hot.acceptance.overtaken} requests overtaken, "
                f"by at most {fmt(hot.overtaking_ms, 1)} ms",
            ]
        others = self.others
        out.append(
            f"  every other event of the run ({len(others)} events, {sum(f.kafka.requests for f in others)} requests"
            f" read from Kafka): {sum(f.kafka.pairs for f in others)} inverted pairs against Kafka order"
        )
        return out


DECISION_ROWS_SQL = """
SELECT r.event_id, r.kafka_partition, r.kafka_offset, r.accepted_at, o.id
FROM booking_requests r
JOIN outbox o ON o.event_id = r.event_id AND o.kind = ANY(%s) AND o.payload::json ->> 'requestId' = r.request_id
WHERE r.status <> 'pending'
"""


def decision_kinds() -> list[str]:
    """The kinds of the e-mail each decision writes (booking.<outcome>)."""
    from atomicseats.domain.allocator import Outcome

    return [f"booking.{outcome.value}" for outcome in Outcome]


def fairness_of(event_id: int, rows: list[tuple]) -> Fairness:
    """rows: (partition, offset, accepted_at, decision rank) of one event's decided requests."""
    from_kafka = [(p, o, rank) for p, o, _a, rank in rows if p is not None and o is not None]
    accepted = [(a, rank) for _p, _o, a, rank in rows if a is not None]
    return Fairness(
        event_id=event_id,
        decided=len(rows),
        partitions=len({p for p, _o, _r in from_kafka}),
        kafka=kafka_inversions(from_kafka),
        acceptance=inversions(accepted),
        overtaking_ms=largest_overtaking_ms(accepted),
    )


def measure_fairness(db: Db, hot_event_id: int | None) -> RunFairness:
    """The fairness of the hot event, and Kafka order over every other event of the run."""
    by_event: dict[int, list[tuple]] = {}
    for event_id, partition, offset, accepted_at, rank in db.rows(DECISION_ROWS_SQL, (decision_kinds(),)):
        by_event.setdefault(event_id, []).append((partition, offset, accepted_at, rank))
    hot = fairness_of(hot_event_id, by_event.pop(hot_event_id, [])) if hot_event_id is not None else None
    return RunFairness(hot, [fairness_of(event_id, rows) for event_id, rows in sorted(by_event.items())])
