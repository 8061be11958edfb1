"""The ports: what the services need from the outside world, said by the services.

Adapters (`atomicseats/adapters/`) implement these Protocols; the composition root
registers one `Adapters` bundle in `app.extensions` at create_app. Services never import
adapter modules: they call `adapters()` and use whatever the composition root chose
(real in full mode, in-process or no-op in the embedded default). That keeps one code
path for both modes.

Every Redis-backed adapter is best-effort: Postgres is the truth, Redis may be
flushed at any moment, and `flask reconcile` rebuilds what it mirrors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from flask import current_app

if TYPE_CHECKING:
    from atomicseats.services.contracts import (
        AcceptedRequest,
        EventAvailability,
        MailMessage,
        PlatformGauges,
        Quota,
        RequestStatus,
    )

EXTENSION_KEY = "atomicseats.adapters"


class RegistryUnavailable(Exception):
    """The request registry could not be reached: it neither claimed nor read anything."""


class SessionUnconfirmed(Exception):
    """The request registry's store does not hold the caller's session as live (it expired
    from the session cache, or was revoked): nothing was counted or claimed. The session's
    liveness has to be asked of the database, and the claim made again."""


class Pipeline(Protocol):
    """Takes an accepted booking request towards its allocation."""

    # True when `submit` records the request before it returns (in-process): Postgres then
    # settles an Idempotency-Key at once. False when the request travels on (Kafka): until
    # the bridge records it, the request registry is the only place that knows the key.
    records_before_answering: bool

    def submit(self, accepted: AcceptedRequest) -> RequestStatus | None:
        """Hand the request on; return only once it is durable (raise ServiceBusy if not, and
        HandOffUnknown, a ServiceBusy, when it may be durable after all: not confirmed in time).

        In-process, the request is recorded and decided before this returns: its status as
        the pipeline read it then (the recorded row's: a racing body under the same request
        id finds the first one's). None when it travels on (Kafka), or was not recorded (its
        user or event deleted meanwhile): pending, as far as the caller can tell."""


class Wakeups(Protocol):
    """Asks for recorded work to be done soon, after the commit that recorded it.

    Best-effort: a lost wake-up is made good by the sweeper (allocation) or the periodic
    sender (notifications), so callers log a failure and go on."""

    def wake_allocation(self, partition: int, event_ids: Sequence[int]) -> None:
        """Decide the events' recorded requests, together (on the queue of the Kafka partition
        they came from). May send nothing when the partition's wake-up is queued already and not
        started: the events join it."""

    def allocation_started(self, partition: int, task_id: str, sent_with: Sequence[int]) -> list[int]:
        """The partition's allocation task `task_id`, sent with the events `sent_with`, starts
        (before it reads the pending requests): a wake-up from now on must queue another.
        Returns the other events that joined its wake-up while it waited, and those an earlier
        delivery of the same task took and did not finish (a task redelivered after its worker
        died carries only the events it was sent with). None of them: nothing to finish."""

    def allocation_finished(self, partition: int, task_id: str) -> None:
        """The allocation task `task_id` is done with the events it took (decided, or handed to
        a successor task): a later delivery of it need not take them again."""

    def wake_outbox(self) -> None:
        """Ask for due notifications to be sent (after a commit that wrote some). May send
        nothing when the outbox's wake-up is queued already and not started."""

    def outbox_started(self, task: str) -> None:
        """An outbox task (`task`, its name) starts, before it reads what is due: a wake-up
        from now on must queue another."""


class Probe(Protocol):
    """A server some adapters depend on, for the readiness probe (e.g. "redis")."""

    name: str

    def ping(self) -> bool:
        """True when it answers now, False otherwise; never raises, never waits long."""


class AvailabilityCache(Protocol):
    """Seat availability per event, for listings and admission control.

    Reads never raise: an unreachable cache answers "missing" and the caller asks Postgres.
    `keeps_entries` is False for a cache that keeps nothing (every read a miss): a reader
    then skips what it would only have read to store."""

    keeps_entries: bool

    def store(self, availability: list[EventAvailability]) -> None:
        """Overwrite the entries, each unless the cache holds a newer version of it: what a
        writer read in the transaction that just committed (writers' stores can arrive in the
        other order than their commits)."""

    def replace(self, availability: list[EventAvailability]) -> None:
        """Overwrite the entries whatever version they hold: a repair by a caller that holds
        the events' row locks (reconcile), so no newer commit can be overwritten. It also
        mends an entry left ahead of the database (restored from a backup, or a database
        made anew under the same Redis), which `store` would keep."""

    def store_missing(self, availability: list[EventAvailability]) -> None:
        """Fill only the entries the cache lacks: a reader filling a miss from Postgres must
        not overwrite what a writer stored meanwhile, after a newer commit."""

    def load(self, event_id: int) -> EventAvailability | None: ...

    def load_many(self, event_ids: list[int]) -> dict[int, EventAvailability]:
        """The entries the cache holds among `event_ids`, in one round trip; absent ones are left out."""

    def forget(self, event_id: int) -> None: ...


@dataclass(frozen=True)
class Claim:
    """What `RequestRegistry.claim_and_read` found: the request first claimed under the same
    (user, Idempotency-Key), if any; the event's cached availability, if cached; and, for a
    keyed claim, since when the registry holds every key (`keys_held_after`, None when it
    cannot say: see `RequestRegistry.hold_keys_after`)."""

    earlier: AcceptedRequest | None = None
    availability: EventAvailability | None = None
    keys_held_after: datetime | None = None


class RequestRegistry(Protocol):
    """Requests the API accepted that the database may not have recorded yet.

    `claim` stores the request under its id and, when it has one, under its
    (user, Idempotency-Key) for `key_ttl_s`; it returns the request already stored for
    that key, if any, so a retry finds the first attempt before the bridge has recorded it.
    """

    def claim(self, accepted: AcceptedRequest) -> AcceptedRequest | None: ...

    counts_quotas: bool
    """Whether `claim_and_read` counts quotas (its store is the rate limiter's)."""

    key_ttl_s: int
    """How long a claimed Idempotency-Key is held (0: none is, nothing is claimed)."""

    confirms_sessions: bool
    """Whether `claim_and_read` confirms a session (its store is the SessionCache's)."""

    def claim_and_read(
        self, accepted: AcceptedRequest, quotas: Sequence[Quota] = (), session_id: str | None = None
    ) -> Claim:
        """`claim`, and the event's availability as the AvailabilityCache holds it (None when
        it does not), in one round trip: admission control and the claim on the hot path.
        Where `confirms_sessions` and a `session_id` is given, the session cache must hold that
        session live for the request's user before anything else (SessionUnconfirmed, nothing
        counted or claimed, when it does not): the caller's liveness check rides the same
        round trip. Where `counts_quotas`, the user's quotas are counted next: RateLimited
        (nothing claimed) when one is used up. Raises RegistryUnavailable when it could do
        none of it."""

    def hold_keys_after(self, since: Callable[[], datetime | None]) -> None:
        """Mark, unless marked already, that the registry holds every key claimed after the
        time `since()` gives (each for `key_ttl_s`); None from it: no mark yet. The services
        call it when a claim finds no mark (a new Redis, or one that lost its data), `since`
        reading the newest keyed request the database recorded: a registry that cannot keep
        every claim (one that may evict keys) never calls it. The mark goes with the
        registry's data, like the claims: a registry that lost claims never vouches for them."""

    def release(self, accepted: AcceptedRequest) -> None:
        """Undo a claim whose hand-off failed (the API answered 503)."""

    def find(self, request_id: str) -> AcceptedRequest | None: ...


@dataclass(frozen=True)
class MirroredEntry:
    """A waiting entry as the waitlist mirror holds it: the seats it still waits for and the
    tier whose queue it is in (None: its tier is gone; such entries queue together)."""

    seats: int
    tier_id: int | None


class WaitlistMirror(Protocol):
    """Each event's waiting entries, one FIFO (entry id) queue per tier, for places and seats
    ahead without a Postgres scan. `keeps_entries` is False for a mirror that keeps nothing."""

    keeps_entries: bool

    def replace(self, event_id: int, entries: Mapping[int, MirroredEntry]) -> None:
        """The whole waitlist: entry id -> what the mirror holds of it."""

    def apply(
        self,
        event_id: int,
        appended: Mapping[int, MirroredEntry],
        removed: list[int],
        expected_length: int,
        seats: Mapping[int, int] | None = None,
    ) -> None:
        """Add the new entries (at their queues' tails: ids only grow), drop removed ones and
        note `seats` (entry id -> seats it still waits for: a partly served head's); if the
        mirror then differs in length from `expected_length` (Postgres' count), drop it so it
        is rebuilt. A missing mirror stays missing (it would be partial)."""

    def place(self, event_id: int, entry_id: int, tier_id: int | None) -> tuple[int, int | None] | None:
        """(1-based place in its tier's queue, seats the entries ahead of it there still wait
        for: None when not counted, e.g. too far back to count cheaply), or None when the
        mirror cannot say (the caller asks Postgres)."""

    def load(self, event_id: int) -> dict[int, int | None] | None:
        """Every entry id held -> its tier id, in FIFO (id) order; None when not mirrored."""


@dataclass(frozen=True)
class LineReading:
    """Where a request stands in its event's pending line, as the line's store read it:
    `rank` 0 is the next to be decided; `decided_per_second` the event's decisions in each
    of the last few whole seconds (oldest first), for the wait estimate."""

    rank: int
    decided_per_second: tuple[int, ...]


@dataclass(frozen=True)
class LineDeparture:
    """An event's requests that a commit decided: all of them up to row id `through_row_id`
    (decisions follow arrival order), `decided` in number; `announced` (request ids whose
    outcome changed) are published on the outcome channel."""

    event_id: int
    through_row_id: int
    decided: int
    announced: list[str]


class Line(Protocol):
    """Each event's pending line: the requests recorded and not yet decided, in arrival order
    (the booking request row id: the order allocation follows), and the event's recent
    decision rate. Best-effort like every mirror: a lost line is rebuilt from Postgres
    (`flask reconcile`), and meanwhile a request reads as "not counted yet".

    `keeps_entries` is False where nobody is ever pending (the embedded default decides a
    request before answering it): there is no line to show."""

    keeps_entries: bool

    def enter(self, recorded: Sequence[tuple[int, int, str]]) -> None:
        """(event id, row id, request id) of requests just recorded (after the commit)."""

    def leave(self, departures: Sequence[LineDeparture]) -> None:
        """After a commit that decided the events' requests (one departure per event): they
        leave the line and count towards the rate, and the outcomes announced are published,
        in one round trip for all of them where the store can."""

    def reading(self, event_id: int, request_id: str) -> LineReading | None:
        """The request's rank and the event's rate, in one round trip; None when the line
        does not hold the request (not recorded yet, decided, or the line was lost)."""

    def rebuild(self, event_id: int, pending: Sequence[tuple[int, str]], decided_below_row_id: int) -> None:
        """Merge what Postgres holds into the event's line: `pending` (row id, request id),
        oldest first, and every request below `decided_below_row_id` decided. Safe against
        a bridge and a worker writing meanwhile: it only adds what is not decided and only
        removes what is."""

    def sizes(self, event_ids: list[int]) -> dict[int, int] | None:
        """How many requests each event's line holds (0 when none), in one round trip; None
        when the store cannot say."""


class OutcomeChannel(Protocol):
    """Tells long-polling readers that a request reached its final outcome."""

    def publish(self, request_ids: list[str]) -> None: ...

    def subscribe(self, request_id: str) -> OutcomeSubscription:
        """Listen first, then read Postgres, then wait: no announcement falls in between."""


class OutcomeSubscription(Protocol):
    def __enter__(self) -> OutcomeSubscription: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def wait(self, timeout_s: float) -> None:
        """Return when the request is announced or the timeout passes (caller re-reads Postgres)."""


class SessionCache(Protocol):
    """Login sessions known to be live, so an authenticated request need not ask Postgres.

    Only positive answers are cached, briefly; logout forgets at once. A lost cache
    means asking Postgres again, never accepting a revoked token."""

    def is_live(self, session_id: str, user_id: int) -> bool: ...

    def was_live(self, session_id: str, user_id: int) -> bool:
        """Postgres found it live within the last few minutes and nobody logged it out since:
        asked only while Postgres cannot answer."""
        ...

    def remember(self, session_id: str, user_id: int) -> None: ...

    def forget(self, session_id: str) -> None: ...


class Mailer(Protocol):
    def send_all(
        self,
        messages: Sequence[MailMessage],
        deadline: float,
        on_accepted: Callable[[list[int]], None] | None = None,
    ) -> list[Exception | None]:
        """Deliver a batch (over as few connections as it can); never raises. One result per
        message, in order: None if the mail server accepted it, else the error (the outbox
        retries it), or MailNotAttempted for one not tried before `deadline` (time.monotonic()).
        Meanwhile, now and then, `on_accepted` gets the positions accepted since its last call
        (in the caller's thread; whatever it raises ends the batch)."""


class DomainEventPublisher(Protocol):
    def publish(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish (key, payload) pairs to `booking-events`; raise if not acknowledged."""


class Metrics(Protocol):
    """What the platform counts, for operators (Prometheus in every mode: adapters/metrics.py).

    Recording never raises and costs a few memory writes: it sits on the hot path. Label
    values come from bounded sets (route rules, outcomes, statuses), never from input."""

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None: ...

    def requests_accepted(self, count: int) -> None: ...

    def requests_decided(self, decided: Sequence[tuple[str, float]]) -> None:
        """(outcome, seconds from acceptance to decision) for each request a batch decided."""

    def allocation_batch(self, size: int, seconds: float) -> None: ...

    def notifications_sent(self, sent: int, failed: int) -> None:
        """E-mails handed to the mail server, and send attempts that failed (retried or given up)."""

    def drift_repaired(self, mirror: str, count: int) -> None:
        """Redis entries `flask reconcile` found drifted and rewrote ("availability", "waitlist", "line")."""

    def consumer_lag(self, waiting_by_partition: dict[int, int]) -> None:
        """Messages waiting behind this consumer, per assigned partition (the bridge)."""

    def render(self, gauges: PlatformGauges | None) -> tuple[bytes, str]:
        """This process's metrics (all of its worker processes'), plus `gauges` read from the
        database, in the Prometheus text format: (body, content type)."""


@dataclass(frozen=True)
class Adapters:
    pipeline: Pipeline
    wakeups: Wakeups
    availability: AvailabilityCache
    requests: RequestRegistry
    waitlist: WaitlistMirror
    outcomes: OutcomeChannel
    line: Line
    sessions: SessionCache
    mailer: Mailer
    domain_events: DomainEventPublisher
    metrics: Metrics
    probes: tuple[Probe, ...] = ()  # what readiness reports on besides the database


def adapters() -> Adapters:
    bundle: Adapters = current_app.extensions[EXTENSION_KEY]
    return bundle
