"""The whole full-mode platform, started once per session on STACK=e2e (E2E_STACK), shared by
the end-to-end tests (tests/e2e) and the browser tests' "pipeline" server (tests/browser): a
pytest plugin (tests/conftest.py loads it), so one pytest process starts one stack whichever
of the two folders it runs.

Backing services come from scripts/services.sh and the app processes (the API, Kafka
bridge, Celery worker, mailer and beat) from scripts/platform.sh: what `make up` runs is what is
tested. The session gets a fresh database, freshly created Kafka topics, an empty Redis and
an empty SMTP sink, so nothing from an earlier run can leak in. Anything that cannot start
fails the session loudly; nothing is skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis

from scripts.stacktools import parse_exports, recreate_topics
from tests.e2e.support import (
    APP_PROCS,
    REPO_ROOT,
    STACK,
    Platform,
    run,
    stack_env,
)

DATABASE_PREFIX = "atomicseats_e2e_"
# The auth rate limit (10/min per address by default) would throttle creating dozens of
# test accounts from one address; everything else runs with production settings.
# The per-request lines of the bridge (bridge.request.recorded) and the worker
# (booking.request.decided) are DEBUG; the tests trace requests by them.
APP_ENV_OVERRIDES = {
    "RATELIMIT_AUTH": "100000 per minute",
    "LOG_DEBUG": "atomicseats.bridge,atomicseats.services._allocation",
    # A module's accounts log in once; its tests can outlast the 15-minute default on a busy
    # machine (the fault tests took 20 there, and every call after the 15th answered 401).
    "ACCESS_TOKEN_EXPIRY_MIN": "240",
}
# How long platform.sh waits for each process to be ready (its default: 60 s). On a busy machine
# (a shared CI runner, several checkouts testing at once) the mailer, started at nice 19, can take
# longer than that to boot; a process that never gets ready still fails the session.
START_TIMEOUT_S = os.environ.get("PLATFORM_START_TIMEOUT", "180")


def _fail(step: str, output: str) -> None:
    """The scripts' ERROR lines first (a service's log tail printed after its ERROR line can
    be longer than what is shown, e.g. "port ... already in use ...: another checkout's
    stack?"), then the end of the output."""
    errors = "\n".join(line for line in output.splitlines() if "ERROR" in line)
    pytest.fail(f"e2e platform: {step} failed:\n{errors}\n--- end of the output:\n{output[-6000:]}", pytrace=False)


def _checked(step: str, args: list[str], env: dict[str, str], timeout_s: float) -> str:
    try:
        code, output = run(args, env, timeout_s)
    except Exception as error:  # a hang (TimeoutExpired) is a failure too, never a skip
        _fail(step, repr(error))
    if code != 0:
        _fail(step, output)
    return output


def _server_url(database_url: str, database: str) -> str:
    base, _, _ = database_url.rpartition("/")
    return f"{base}/{database}"


def _admin_sql(server_url: str, statement: str) -> list[tuple]:
    connection = psycopg2.connect(server_url, connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


def _fresh_database(services: dict[str, str]) -> str:
    """CREATE DATABASE on the e2e Postgres; databases of crashed earlier sessions are dropped."""
    server_url = _server_url(services["DATABASE_URL"], "postgres")
    stale = _admin_sql(server_url, f"SELECT datname FROM pg_database WHERE datname LIKE '{DATABASE_PREFIX}%'")
    for (name,) in stale:
        _admin_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:10]}"
    _admin_sql(server_url, f'CREATE DATABASE "{name}"')
    return _server_url(services["DATABASE_URL"], name)


def _drop_database(database_url: str) -> None:
    name = database_url.rpartition("/")[2]
    _admin_sql(_server_url(database_url, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    script_env = stack_env(PLATFORM_START_TIMEOUT=START_TIMEOUT_S)
    # App processes left running by an earlier session that died would still point at its
    # (dropped) database: stop them, so `platform.sh start` really starts ours.
    _checked("platform.sh stop", ["bash", "scripts/platform.sh", "stop", *APP_PROCS, "flower"], script_env, 180)
    try:
        _checked("services.sh start", ["bash", "scripts/services.sh", "start"], script_env, 600)
    except BaseException:  # pytest.fail included: stop the services that did start (ours only)
        run(["bash", "scripts/services.sh", "stop"], script_env, 180)
        raise
    services = parse_exports(_checked("services.sh env", ["bash", "scripts/services.sh", "env"], script_env, 30))
    database_url = _fresh_database(services)
    script_env = stack_env(DATABASE_URL=database_url, PLATFORM_START_TIMEOUT=START_TIMEOUT_S, **APP_ENV_OVERRIDES)
    app_env = {**script_env}
    try:
        app_env.update(
            parse_exports(_checked("platform.sh env", ["bash", "scripts/platform.sh", "env"], script_env, 60))
        )
        app_run_dir = REPO_ROOT / ".run" / STACK / "app"
        app_env.update(parse_exports((app_run_dir / "secrets.env").read_text()))
        assert app_env["DATABASE_URL"] == database_url, "platform.sh did not keep the caller's DATABASE_URL"
        recreate_topics(app_env["KAFKA_BROKERS"])
        client = redis.Redis.from_url(app_env["REDIS_URL"])
        client.flushall()
        client.close()
        sink_dir = Path(app_env["SMTP_SINK_DIR"])
        for old in sink_dir.glob("*.eml"):
            old.unlink()
        _checked("migrations", [str(REPO_ROOT / ".venv/bin/flask"), "--app", "wsgi", "db", "upgrade"], app_env, 120)
        stack = Platform(
            env=app_env,
            script_env=script_env,
            api_url=app_env["API_URL"],
            database_url=database_url,
            sink_dir=sink_dir,
            app_run_dir=app_run_dir,
        )
        stack.log_offsets = {proc: stack.app_log_size(proc) for proc in APP_PROCS}
        _checked("platform.sh start", ["bash", "scripts/platform.sh", "start", *APP_PROCS], script_env, 900)
        stack.admin = stack.create_admin()
        yield stack
    finally:
        run(["bash", "scripts/platform.sh", "stop", *reversed(APP_PROCS)], script_env, 120)
        try:
            _drop_database(database_url)
        finally:
            run(["bash", "scripts/services.sh", "stop"], script_env, 180)
