"""On one machine the processes run at the priorities platform.sh gives them: the API and the
allocation worker first, the bridge after them, e-mail last (scripts/platform.sh `nice_of`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.support import Platform

pytestmark = [pytest.mark.e2e]

EXPECTED_NICE = {"api": 0, "worker": 0, "bridge": 5, "mailer": 19}


def nice_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])  # field 19: nice


def test_the_worker_decides_at_the_apis_priority_and_recording_and_email_yield(platform: Platform):
    """The worker's tasks wait on a dozen round trips each: at a lower priority than the API
    each answer's wake-up queued behind the API's threads (half load's decisions took up to
    twice as long). Each process's restart loop and what it runs share the priority."""
    pids = {proc: int((platform.app_run_dir / f"{proc}.pid").read_text()) for proc in EXPECTED_NICE}

    assert {proc: nice_of(pid) for proc, pid in pids.items()} == EXPECTED_NICE
    for proc, pid in pids.items():  # the process the loop runs (and its pool's children) too
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert children, f"{proc}'s restart loop runs nothing"
        assert {nice_of(int(child)) for child in children} == {EXPECTED_NICE[proc]}
