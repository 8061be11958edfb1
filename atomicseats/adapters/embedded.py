"""The embedded default's adapters: the pipeline runs in-process, Redis-less stand-ins.

Same services, same transactions as the full mode: a request is recorded, then its
event allocated, before the API answers; notifications are sent right after.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from flask import Flask, current_app

from atomicseats.services.contracts import AcceptedRequest, EventAvailability, Quota, RequestStatus
from atomicseats.services.ports import Claim, LineDeparture, LineReading, MirroredEntry, OutcomeChannel

log = logging.getLogger(__name__)


# process(items): record and decide the items in one transaction, committed when it returns.
BatchProcess = Callable[[list[AcceptedRequest]], object]
# read_statuses(request ids): the recorded requests' statuses, by request id, as committed.
StatusReader = Callable[[list[str]], Mapping[str, RequestStatus]]


class InProcessPipeline:
    """Records the request and decides its event before the API answers, with group commit:
    the requests submitted concurrently in this process are recorded and decided together,
    in one transaction (`record_and_decide`: `booking.record_and_decide`, from the
    composition root), so one commit (one fsync on SQLite) serves the whole batch, and
    each caller gets its request's status as the batch's leader read it."""

    records_before_answering = True

    def __init__(
        self,
        record_and_decide: BatchProcess,
        read_statuses: StatusReader,
        batch_max: int,
        writers: WritersLock | None = None,
    ) -> None:
        self.group = GroupCommit(record_and_decide, read_statuses, batch_max, writers.held if writers else None)

    def submit(self, accepted: AcceptedRequest) -> RequestStatus | None:
        return self.group.submit(accepted)


class SerialInProcessPipeline:
    """EMBEDDED_GROUP_COMMIT=false: each request recorded, then its event decided, in two
    transactions of its own before the API answers; concurrent requests decide concurrently
    (the event row lock serializes them). Then its status is read (`read_statuses`).

    Once recorded, the request is accepted whatever follows: should deciding it fail (its
    event's row held past the lock timeout, the database gone) or its status be unreadable,
    the caller answers with it pending, never with an error a client would take for "not
    booked" and send again as a second request. The next allocation of its event decides it,
    or the beat's sweep of stranded requests (`embedded_beat_rounds`)."""

    records_before_answering = True

    def __init__(
        self,
        record: Callable[[list[AcceptedRequest]], object],
        allocate: Callable[[int], object],
        read_statuses: StatusReader,
    ) -> None:
        self._record = record
        self._allocate = allocate
        self._read_statuses = read_statuses

    def submit(self, accepted: AcceptedRequest) -> RequestStatus | None:
        self._record([accepted])
        try:
            self._allocate(accepted.event_id)
            return self._read_statuses([accepted.request_id]).get(accepted.request_id)
        except Exception:
            log.warning(
                "embedded.serial.left_pending",
                extra={"request_id": accepted.request_id, "event_id": accepted.event_id},
                exc_info=True,
            )
            return None


class _Slot:
    """One caller's item, and what wakes that caller alone: its outcome, or its turn to lead."""

    __slots__ = ("item", "done", "error", "status", "wakeup")

    def __init__(self, item: AcceptedRequest, lock: threading.Lock) -> None:
        self.item = item
        self.done = False
        self.error: BaseException | None = None
        self.status: RequestStatus | None = None
        self.wakeup = threading.Condition(lock)


class GroupCommit:
    """A leader/follower queue: `submit` queues the caller's item; the first caller to find no
    batch in progress leads: it takes everything queued (up to `batch_max`, in arrival order)
    and runs `process` on it, in its own thread and app context; once that is committed, it
    reads the batch's statuses (`read_statuses`, a few statements for all of them, after its
    writers' turn: the other processes' leaders need not wait for it) and each follower wakes
    with its own. Whatever arrives meanwhile waits for the next batch, so batches grow with
    load and an idle process commits a lone request at once.

    Each caller waits on a condition of its own (one lock for all): a commit wakes its batch's
    callers and, once the batch is over, the first of those still queued, who leads next;
    nobody else. (One condition for all woke every waiting thread at each step, to find most
    of them with nothing to do: ~50 context switches a booking, each a GIL hand-over.)

    When a batch fails, none of it was written (`process` is one transaction) and each of its
    items is processed again alone, so an error reaches only the caller it belongs to.

    `writers_turn` (optional) is held by a leader around its batch, before it takes the batch:
    the server processes that write one SQLite file take turns on it (`WritersLock`), so a
    leader waits for another process's batch blocked in the kernel and starts the moment it is
    over, with everything that queued meanwhile, rather than polling SQLite's write lock."""

    def __init__(
        self,
        process: BatchProcess,
        read_statuses: StatusReader,
        batch_max: int,
        writers_turn: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        assert batch_max >= 1
        self._process = process
        self._read_statuses = read_statuses
        self._batch_max = batch_max
        self._writers_turn = writers_turn or contextlib.nullcontext
        self._lock = threading.Lock()
        self._queue: collections.deque[_Slot] = collections.deque()
        self._leading = False

    @property
    def queued(self) -> int:
        """Items waiting for the next batch."""
        with self._lock:
            return len(self._queue)

    @property
    def leading(self) -> bool:
        """Whether a batch is in progress."""
        with self._lock:
            return self._leading

    def submit(self, item: AcceptedRequest) -> RequestStatus | None:
        """Returns once the item is committed, with its status (None: not recorded); raises
        the error of its own processing."""
        slot = _Slot(item, self._lock)
        with self._lock:
            self._queue.append(slot)
            while not slot.done:
                if self._leading:
                    slot.wakeup.wait()  # woken with its outcome, or to lead (the queue's first)
                    continue
                self._leading = True
                self._lock.release()
                try:
                    self._take_turn_and_lead()
                except BaseException:
                    with self._lock:
                        if slot in self._queue:  # the turn was never had: nobody will process it
                            self._queue.remove(slot)
                    raise
                finally:
                    self._lock.acquire()
                    self._leading = False
                    if self._queue:
                        self._queue[0].wakeup.notify()
        if slot.error is not None:
            raise slot.error
        return slot.status

    def _take_turn_and_lead(self) -> None:
        with self._writers_turn():
            with self._lock:  # what queued while the turn was awaited comes along
                batch = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
            self._lead(batch)
        self._finish(batch, self._statuses_of([slot for slot in batch if slot.error is None]))

    def _lead(self, batch: list[_Slot]) -> None:
        try:
            self._run(batch)
        except BaseException as error:  # the leader itself is interrupted: nobody of it is left waiting
            self._finish(batch, error=error)
            raise

    def _run(self, batch: list[_Slot]) -> None:
        try:
            self._process([slot.item for slot in batch])
        except Exception as error:
            if len(batch) == 1:
                batch[0].error = error
                return
            # Nothing of the batch was written: each request again, alone, so an error
            # reaches only the caller whose request caused it.
            log.warning("embedded.group_commit.batch_failed", extra={"requests": len(batch), "error": repr(error)})
            for slot in batch:
                try:
                    self._process([slot.item])
                except Exception as own_error:
                    slot.error = own_error

    def _statuses_of(self, committed: list[_Slot]) -> Mapping[str, RequestStatus]:
        """The committed requests' statuses. Should reading them fail, they are committed all
        the same: each caller then answers with its request pending (its status will tell),
        never with an error that a client would take for "not booked" and retry."""
        try:
            return self._read_statuses([slot.item.request_id for slot in committed]) if committed else {}
        except Exception:
            log.warning("embedded.group_commit.statuses_unread", extra={"requests": len(committed)}, exc_info=True)
            return {}

    def _finish(
        self,
        slots: list[_Slot],
        statuses: Mapping[str, RequestStatus] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Wake the callers of these slots (once each) with their outcome."""
        with self._lock:
            for slot in slots:
                if not slot.done:
                    slot.error = slot.error or error
                    slot.status = statuses.get(slot.item.request_id) if statuses else None
                    slot.done = True
                    slot.wakeup.notify()


class WritersLock:
    """An exclusive lock that the server processes of one machine share: flock(2) on a file
    beside the SQLite database. A waiter sleeps in the kernel and wakes when it is released.
    Each process opens the file itself (after the server forked its workers)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd: int | None = None
        self._pid = 0
        self._opening = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = self._descriptor()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _descriptor(self) -> int:
        with self._opening:
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            return self._fd


class InProcessWakeups:
    """Work is done at once, in this process: allocation in the caller's context; the outbox
    (`send_notifications`: the outbox's sender, from the composition root) by the process's
    beat thread when `send_in_background` hands it over (`EmbeddedBeat.wake`: a booking's
    leader then commits and goes on, and the e-mails of many batches go out together), else
    right away in a fresh app context."""

    def __init__(
        self,
        allocate: Callable[[int], object],
        send_notifications: Callable[[], object],
        send_in_background: Callable[[], bool] | None = None,
    ) -> None:
        self._allocate = allocate
        self._send_notifications = send_notifications
        self._send_in_background = send_in_background

    def wake_allocation(self, partition: int, event_ids: Sequence[int]) -> None:
        for event_id in event_ids:
            self._allocate(event_id)

    def allocation_started(self, partition: int, task_id: str, sent_with: Sequence[int]) -> list[int]:
        """Nothing to clear or take: an in-process wake-up is never queued."""
        return []

    def allocation_finished(self, partition: int, task_id: str) -> None:
        """Nothing to let go: an in-process task takes nothing."""

    def outbox_started(self, task: str) -> None:
        """Nothing to clear: an in-process wake-up is never queued."""

    def wake_outbox(self) -> None:
        """Send due notifications: the beat thread's next turn, or now, in a fresh app context
        (its own database session, so the caller's objects are neither expired nor detached by
        the sender's commits) when no beat runs (tests, EMBEDDED_BEAT_INTERVAL_S=0, CLI)."""
        if self._send_in_background is not None and self._send_in_background():
            return
        with current_app.app_context():
            self._send_notifications()


class EmbeddedBeat:
    """The embedded default's stand-in for Celery beat: one daemon thread per server process
    runs the periodic work every `interval_s` (the composition root passes the rounds: closing
    the sales of events that started, sending e-mails whose retry is due), each round in a
    fresh app context.

    `wake(name)` asks for one round now, off the caller's path (the booking group commit's
    leader wakes the e-mail round after each commit). Wake-ups that arrive while the thread is
    busy coalesce into one run, and a woken round runs at most once every `wake_gap_s`: under
    load one run sends what many commits wrote (two short transactions for all of them).

    Started by the first request the server answers, so CLI commands (which build the same
    app) never start it. A failing round is logged and the next one runs as usual."""

    def __init__(
        self,
        app: Flask,
        interval_s: float,
        rounds: Sequence[tuple[str, Callable[[], object]]],
        wake_gap_s: float = 0.0,
    ) -> None:
        assert interval_s > 0
        assert rounds
        assert wake_gap_s >= 0
        self._app = app
        self._interval_s = interval_s
        self._wake_gap_s = wake_gap_s
        self._rounds = tuple(rounds)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._woken_rounds: set[str] = set()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._stopping.is_set()

    def start_once(self) -> None:
        if self._thread is not None:  # the hook's common case: one attribute read
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="embedded-beat", daemon=True)
                self._thread.start()

    def wake(self, name: str) -> bool:
        """Have the thread run round `name` soon. False when no thread runs (not started yet,
        or stopped): the caller does the work itself."""
        assert name in {round_name for round_name, _ in self._rounds}
        if not self.running:
            return False
        with self._lock:
            self._woken_rounds.add(name)
        self._woken.set()
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        self._woken.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        # Runs until the server process ends (daemon thread) or stop() is called.
        next_beat = time.monotonic() + self._interval_s
        while not self._stopping.is_set():
            self._woken.wait(max(0.0, next_beat - time.monotonic()))
            if self._stopping.is_set():
                return
            if time.monotonic() >= next_beat:
                self._take_woken()  # the full round covers them
                self.run_round()
                next_beat = time.monotonic() + self._interval_s
                continue
            woken = self._take_woken()
            if woken:
                self.run_round(woken)
                # What commits meanwhile waits for the next run: it then goes out with more.
                self._stopping.wait(self._wake_gap_s)

    def _take_woken(self) -> set[str]:
        with self._lock:
            woken, self._woken_rounds = self._woken_rounds, set()
            self._woken.clear()
        return woken

    def run_round(self, only: set[str] | None = None) -> None:
        with self._app.app_context():
            for name, work in self._rounds:
                if only is not None and name not in only:
                    continue
                try:
                    work()
                except Exception:
                    log.exception("embedded.beat.failed", extra={"task": name})


class NoAvailabilityCache:
    """Every read is a miss: listings and admission control read Postgres."""

    keeps_entries = False

    def store(self, availability: list[EventAvailability]) -> None:
        return None

    def replace(self, availability: list[EventAvailability]) -> None:
        return None

    def store_missing(self, availability: list[EventAvailability]) -> None:
        return None

    def load(self, event_id: int) -> EventAvailability | None:
        return None

    def load_many(self, event_ids: list[int]) -> dict[int, EventAvailability]:
        return {}

    def forget(self, event_id: int) -> None:
        return None


class NoRequestRegistry:
    """In-process, a request is recorded before the API answers: Postgres knows it all."""

    def claim(self, accepted: AcceptedRequest) -> AcceptedRequest | None:
        return None

    counts_quotas = False
    key_ttl_s = 0
    confirms_sessions = False

    def claim_and_read(
        self, accepted: AcceptedRequest, quotas: Sequence[Quota] = (), session_id: str | None = None
    ) -> Claim:
        return Claim()

    def hold_keys_after(self, since: Callable[[], datetime | None]) -> None:
        return None

    def release(self, accepted: AcceptedRequest) -> None:
        return None

    def find(self, request_id: str) -> AcceptedRequest | None:
        return None


class NoWaitlistMirror:
    """Places come straight from Postgres."""

    keeps_entries = False

    def replace(self, event_id: int, entries: Mapping[int, MirroredEntry]) -> None:
        return None

    def apply(
        self,
        event_id: int,
        appended: Mapping[int, MirroredEntry],
        removed: list[int],
        expected_length: int,
        seats: Mapping[int, int] | None = None,
    ) -> None:
        return None

    def place(self, event_id: int, entry_id: int, tier_id: int | None) -> tuple[int, int | None] | None:
        return None

    def load(self, event_id: int) -> dict[int, int | None] | None:
        return None


class NoLine:
    """In-process a request is decided before the API answers it: nobody is ever pending,
    so there is no line to keep or show. Decisions are still announced, on `outcomes`."""

    keeps_entries = False

    def __init__(self, outcomes: OutcomeChannel) -> None:
        self.outcomes = outcomes

    def enter(self, recorded: Sequence[tuple[int, int, str]]) -> None:
        return None

    def leave(self, departures: Sequence[LineDeparture]) -> None:
        self.outcomes.publish([request_id for departure in departures for request_id in departure.announced])

    def reading(self, event_id: int, request_id: str) -> LineReading | None:
        return None

    def rebuild(self, event_id: int, pending: Sequence[tuple[int, str]], decided_below_row_id: int) -> None:
        return None

    def sizes(self, event_ids: list[int]) -> dict[int, int] | None:
        return None


class PollingOutcomeChannel:
    """No pub/sub: a waiter simply re-reads Postgres after a short pause."""

    def publish(self, request_ids: list[str]) -> None:
        return None

    def subscribe(self, request_id: str) -> PollingSubscription:
        return PollingSubscription()


class PollingSubscription:
    POLL_INTERVAL_S = 0.05

    def __enter__(self) -> PollingSubscription:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def wait(self, timeout_s: float) -> None:
        time.sleep(max(0.0, min(timeout_s, self.POLL_INTERVAL_S)))


class NoDomainEventPublisher:
    """Without Kafka there is nobody to tell; rows are marked published."""

    def publish(self, events: list[tuple[str, dict]]) -> None:
        return None


class NoSessionCache:
    def is_live(self, session_id: str, user_id: int) -> bool:
        return False

    def was_live(self, session_id: str, user_id: int) -> bool:
        return False

    def remember(self, session_id: str, user_id: int) -> None:
        return None

    def forget(self, session_id: str) -> None:
        return None
