"""What the bench's report tests share: a FullResult stand-in with every phase absent."""

from __future__ import annotations

from types import SimpleNamespace


def full_result(**phases) -> SimpleNamespace:
    """A full run accepting 1,150.4/s with p50/p99 95.2/410 ms, no phase but those given."""
    absent = dict.fromkeys(("waits", "openloop", "many", "pipeline", "fairness", "idle", "mail", "stages", "reference"))
    return SimpleNamespace(
        accept=SimpleNamespace(accepted_per_s=1150.4),
        latency=SimpleNamespace(p50_ms=95.2, p99_ms=410.0),
        oversold=0,
        **{**absent, **phases},
    )
