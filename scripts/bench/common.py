"""What every phase of the benchmark shares: paths, settings, logging, bounded commands, HTTP."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the application's names, via scripts/stacktools.py

BIN = ROOT / ".venv" / "bin"
# BENCH_STACK and BENCH_PORT_OFFSET move the whole bench (state under .run/<stack>, the services'
# and processes' ports, the embedded server's) so two benches can run side by side, e.g.
# BENCH_STACK=bench2 BENCH_PORT_OFFSET=1300 make bench. The default is STACK=bench (offset 200).
KNOWN_STACK_OFFSETS = {"dev": 0, "test": 100, "bench": 200}  # as scripts/services.sh fixes them
STACK = os.environ.get("BENCH_STACK") or "bench"
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET") or KNOWN_STACK_OFFSETS.get(STACK, 200))
STACK_ENV = {"STACK": STACK, "STACK_PORT_OFFSET": str(PORT_OFFSET)}  # for services.sh and platform.sh
RUN = ROOT / ".run" / STACK
APP_RUN = RUN / "app"
WORK = RUN / "bench"
LUA = ROOT / "scripts" / "bench" / "book.lua"
API_URL = f"http://127.0.0.1:{5000 + PORT_OFFSET}"
EMBEDDED_PORT = 5090 + PORT_OFFSET
BENCH_DB = "atomicseats_bench"
GUEST_PASSWORD = "bench-password-0"
# Issue 12's floors on a 2-core machine: accepted/s at the API, and the pipeline draining a
# 30,000-request backlog of one hot event (bridge and worker on the clock).
FLOOR_ACCEPTED = 1400
FLOOR_DECIDED = 6000
OTHER = "other (not this bench)"

# Settings for every process of the bench stack (and the embedded server): the login limit
# out of the way, tokens that outlive the run.
BENCH_APP_ENV = {"RATELIMIT_AUTH": "1000000 per minute", "ACCESS_TOKEN_EXPIRY_MIN": "240"}
# The bench stack's SMTP sink counts the e-mails instead of storing each as a file: it stands
# for a mail server on another machine, and storing cost it ~0.3 ms of this machine's CPU each.
BENCH_SERVICES_ENV = {"SMTP_SINK_DISCARD": "1"}


class BenchError(RuntimeError):
    pass


def stack_problem() -> str | None:
    """Why BENCH_STACK / BENCH_PORT_OFFSET cannot be used as given (None: they can)."""
    if not STACK.replace("_", "").replace("-", "").isalnum():
        return f"BENCH_STACK={STACK!r}: letters, digits, '-' and '_' only"
    fixed = KNOWN_STACK_OFFSETS.get(STACK)
    if fixed is not None and fixed != PORT_OFFSET:
        return f"STACK={STACK} has the fixed port offset {fixed}: name another BENCH_STACK"
    if STACK in ("dev", "test"):
        return f"BENCH_STACK={STACK} would take over the {STACK} stack: name another"
    if not 0 <= PORT_OFFSET <= 1900 or PORT_OFFSET % 100:
        return f"BENCH_PORT_OFFSET={PORT_OFFSET}: a multiple of 100 up to 1900"
    return None


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(cmd: list[str], env: dict, timeout_s: float, log_name: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command to completion (bounded), its output appended to WORK/<log_name>."""
    log_path = WORK / log_name
    with open(log_path, "a") as log:
        log.write(f"\n--- {time.strftime('%F %T')} $ {' '.join(cmd)}\n")
        log.flush()
        try:
            result = subprocess.run(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s, text=True
            )
        except subprocess.TimeoutExpired as error:
            raise BenchError(f"{' '.join(cmd[:4])} did not finish within {timeout_s:.0f}s (log {log_path})") from error
    if check and result.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        raise BenchError(f"{' '.join(cmd[:4])} failed ({result.returncode}); {log_path}:\n" + "\n".join(tail))
    return result


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None, timeout_s: float = 30) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raise BenchError(f"{method} {url} -> {error.code}: {error.read()[:300]!r}") from error


def wait_http_ok(url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise BenchError(f"{url} not ready after {deadline_s:.0f}s")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = math.ceil(round(q / 100 * len(ordered), 9))  # nearest rank; 99.9% of 1000 is 999, not 1000
    return ordered[max(0, rank - 1)]


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def env_without(names: set[str]) -> dict:
    """This process's environment without the given variables."""
    return {key: value for key, value in os.environ.items() if key not in names}
