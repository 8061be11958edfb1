"""scripts/api_server.sh embedded (what `make run` runs): granian serves the embedded default,
answers, and stops cleanly on Ctrl-C (SIGINT), even one that comes while a worker starts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WAIT_GIVE_UP_S = 60  # a bound on waiting for the server, never a measurement
FULL_MODE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "PIPELINE", "ATOMICSEATS_ENV", "MAIL_SERVER")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_GIVE_UP_S
    while True:
        assert server.poll() is None, "the server exited during start"
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:  # nosec B310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.1)


def embedded_env(sqlite_template: Path, tmp_path: Path, workers: int) -> dict[str, str]:
    database = tmp_path / "atomicseats.db"
    shutil.copyfile(sqlite_template, database)
    env = {name: value for name, value in os.environ.items() if name not in FULL_MODE_VARIABLES}
    env.update(
        DATABASE_URL=f"sqlite:///{database}", API_PORT=str(free_port()), API_WORKERS=str(workers), API_THREADS="4"
    )
    return env


@contextlib.contextmanager
def embedded_server(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """scripts/api_server.sh embedded in a process group of its own, as a terminal runs a job
    (its pid is the group's id); whatever of the group is left at the end is killed."""
    with open(log, "w") as output:
        server = subprocess.Popen(
            ["bash", "scripts/api_server.sh", "embedded"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_the_embedded_server_is_granian_and_stops_on_ctrl_c(sqlite_template, tmp_path):
    env = embedded_env(sqlite_template, tmp_path, workers=1)
    log = tmp_path / "server.log"
    with embedded_server(env, log) as server:
        url = f"http://127.0.0.1:{env['API_PORT']}"
        wait_ready(url, server)
        with urllib.request.urlopen(f"{url}/api/events/all", timeout=10) as response:  # nosec B310 - loopback
            assert json.load(response)["data"]["items"] == []
        server.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert server.wait(WAIT_GIVE_UP_S) == 0
    text = log.read_text()
    assert "Starting granian" in text and "Granian shutdown completed" in text, text


def test_ctrl_c_while_a_worker_starts_stops_every_process(sqlite_template, tmp_path):
    """A terminal's Ctrl-C signals the whole process group: the master, which signals its
    workers again, and the workers themselves. A worker still loading the app then has no
    handler of its own and drops both signals (granian 2.8.9); without api_server.sh's
    --workers-kill-timeout the master waited for it forever."""
    env = embedded_env(sqlite_template, tmp_path, workers=2)
    log = tmp_path / "server.log"
    with embedded_server(env, log) as server:
        deadline = time.monotonic() + WAIT_GIVE_UP_S
        while "Spawning worker-2" not in log.read_text():  # forked, loading the app now
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker-2 never spawned"
            time.sleep(0.01)
        os.killpg(server.pid, signal.SIGINT)
        assert server.wait(WAIT_GIVE_UP_S) == 0
    text = log.read_text()
    assert "Granian shutdown completed" in text, text
    with pytest.raises(ProcessLookupError):  # no worker left behind
        os.killpg(server.pid, 0)
