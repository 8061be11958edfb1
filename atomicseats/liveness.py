"""Liveness of a loop meant to run forever: notice when it has stopped doing its job.

A consumer can stay alive and quiet while requests wait for it (a client library stuck after
its broker restarted, a call that never returns). Nothing fails, so nothing is logged and
nothing restarts it. The process is crash-only: whatever it has not committed is read again
by its successor. So the cure for a stuck loop is to end the process (with a reason in the
log) and let its supervisor (platform.sh, compose's `restart:`) start a fresh one.

Two watches, pure of any client:
- `StallWatch`: work waits (lag) and nothing moved for `stall_s` -> stalled.
- `Heartbeat`: the loop has not come round for `hung_s` (a call that never returns) ->
  `on_hung`, from a thread of its own, since the loop itself cannot notice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass
class StallWatch:
    """Fed one observation at a time: is work waiting, and what marks progress (offsets).

    Stalled once work has been waiting for `stall_s` while the progress mark stayed the same.
    An unknown observation (the broker cannot be asked) starts the wait over: a loop that
    cannot reach its broker is not stuck, it is waiting for it.
    """

    stall_s: float
    _waiting_since: float | None = field(default=None, init=False)
    _mark: Hashable = field(default=None, init=False)

    def observe(self, now: float, work_waits: bool | None, mark: Hashable = None) -> bool:
        if work_waits is None or not work_waits:
            self._waiting_since, self._mark = None, None
            return False
        if self._waiting_since is None or mark != self._mark:
            self._waiting_since, self._mark = now, mark
            return False
        return now - self._waiting_since >= self.stall_s

    def waited_s(self, now: float) -> float:
        return 0.0 if self._waiting_since is None else now - self._waiting_since


class Heartbeat:
    """The loop calls `beat()` each time round; a watcher thread calls `on_hung(silent_s)`
    once if no beat came for `hung_s`."""

    def __init__(
        self, hung_s: float, on_hung: Callable[[float], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.hung_s = hung_s
        self.on_hung = on_hung
        self.clock = clock
        self._last = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        self._last = self.clock()

    def silent_s(self) -> float:
        return self.clock() - self._last

    def start(self) -> Heartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._watch, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.hung_s / 4):
            silent_s = self.silent_s()
            if silent_s >= self.hung_s:
                self.on_hung(silent_s)
                return
