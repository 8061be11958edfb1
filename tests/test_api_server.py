"""scripts/api_server.sh embedded (what `make run` runs): granian serves the embedded default,
answers, and stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

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


def test_the_embedded_server_is_granian_and_stops_on_ctrl_c(sqlite_template, tmp_path):
    database = tmp_path / "atomicseats.db"
    shutil.copyfile(sqlite_template, database)
    port = free_port()
    env = {name: value for name, value in os.environ.items() if name not in FULL_MODE_VARIABLES}
    env.update(DATABASE_URL=f"sqlite:///{database}", API_PORT=str(port), API_WORKERS="1", API_THREADS="4")
    log = tmp_path / "server.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            ["bash", "scripts/api_server.sh", "embedded"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, server)
        with urllib.request.urlopen(f"{url}/api/events/all", timeout=10) as response:  # nosec B310 - loopback
            assert json.load(response)["data"]["items"] == []
        server.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert server.wait(WAIT_GIVE_UP_S) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    text = log.read_text()
    assert "Starting granian" in text and "Granian shutdown completed" in text, text
