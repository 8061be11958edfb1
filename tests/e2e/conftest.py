"""The whole full-mode platform for the end-to-end tests, started once per session on STACK=e2e.

Backing services come from scripts/services.sh and the app processes (the API, Kafka
bridge, Celery worker, mailer and beat) from scripts/platform.sh: what `make up` runs is what is
tested. The session gets a fresh database, freshly created Kafka topics, an empty Redis and
an empty SMTP sink, so nothing from an earlier run can leak in. Anything that cannot start
fails the session loudly; nothing is skipped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from tests.e2e.support import (
    APP_PROCS,
    REPO_ROOT,
    STACK,
    Platform,
    parse_exports,
    run,
    stack_env,
)

TOPICS = {"booking-requests": 6, "booking-events": 3}
BRIDGE_GROUP = "atomicseats-bridge"
DATABASE_PREFIX = "atomicseats_e2e_"
# The auth rate limit (10/min per address by default) would throttle creating dozens of
# test accounts from one address; everything else runs with production settings.
APP_ENV_OVERRIDES = {"RATELIMIT_AUTH": "100000 per minute"}


def _fail(step: str, output: str) -> None:
    pytest.fail(f"e2e platform: {step} failed:\n{output[-6000:]}", pytrace=False)


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


def _recreate_topics(brokers: str, timeout_s: float = 60) -> None:
    """Delete and re-create our topics (and the bridge's group), so no old message can leak in."""
    admin = AdminClient({"bootstrap.servers": brokers, "log_level": 2})
    deadline = time.monotonic() + timeout_s
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [topic for topic in TOPICS if topic in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            try:
                future.result()
            except KafkaException as error:
                if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
    try:
        admin.delete_consumer_groups([BRIDGE_GROUP], request_timeout=10)[BRIDGE_GROUP].result()
    except KafkaException as error:
        if error.args[0].code() not in (KafkaError.GROUP_ID_NOT_FOUND, KafkaError.NON_EMPTY_GROUP):
            raise
    # Deletion completes asynchronously: creating too early says the topic still exists.
    pending = dict(TOPICS)
    while pending:
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=count, replication_factor=1) for topic, count in pending.items()],
            operation_timeout=30,
        )
        for topic, future in futures.items():
            try:
                future.result()
                pending.pop(topic)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        if pending:
            assert time.monotonic() < deadline, f"could not re-create topics {sorted(pending)}"
            time.sleep(0.5)
    while True:
        metadata = admin.list_topics(timeout=10)
        ready = all(
            topic in metadata.topics
            and metadata.topics[topic].error is None
            and len(metadata.topics[topic].partitions) == count
            and all(partition.leader >= 0 for partition in metadata.topics[topic].partitions.values())
            for topic, count in TOPICS.items()
        )
        if ready:
            return
        assert time.monotonic() < deadline, "re-created topics have no leaders"
        time.sleep(0.2)


@pytest.fixture(scope="session")
def platform() -> Iterator[Platform]:
    script_env = stack_env()
    # App processes left running by an earlier session that died would still point at its
    # (dropped) database: stop them, so `platform.sh start` really starts ours.
    _checked("platform.sh stop", ["bash", "scripts/platform.sh", "stop", *APP_PROCS, "flower"], script_env, 180)
    _checked("services.sh start", ["bash", "scripts/services.sh", "start"], script_env, 600)
    services = parse_exports(_checked("services.sh env", ["bash", "scripts/services.sh", "env"], script_env, 30))
    database_url = _fresh_database(services)
    script_env = stack_env(DATABASE_URL=database_url, **APP_ENV_OVERRIDES)
    app_env = {**script_env}
    try:
        app_env.update(
            parse_exports(_checked("platform.sh env", ["bash", "scripts/platform.sh", "env"], script_env, 60))
        )
        app_run_dir = REPO_ROOT / ".run" / STACK / "app"
        app_env.update(parse_exports((app_run_dir / "secrets.env").read_text()))
        assert app_env["DATABASE_URL"] == database_url, "platform.sh did not keep the caller's DATABASE_URL"
        _recreate_topics(app_env["KAFKA_BROKERS"])
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
        _checked("platform.sh start", ["bash", "scripts/platform.sh", "start", *APP_PROCS], script_env, 300)
        stack.admin = stack.create_admin()
        yield stack
    finally:
        run(["bash", "scripts/platform.sh", "stop", *reversed(APP_PROCS)], script_env, 120)
        try:
            _drop_database(database_url)
        finally:
            run(["bash", "scripts/services.sh", "stop"], script_env, 180)


def pytest_collection_modifyitems(session, config, items) -> None:
    """The healthy pipeline first, then the faults (a broken pipeline shows up as such first)."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/e2e/test_faults.py"))
