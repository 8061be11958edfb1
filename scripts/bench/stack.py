"""The bench stack: STACK=bench (or BENCH_STACK) driven through scripts/platform.sh and scripts/services.sh, its
Postgres database and Kafka topics made fresh, and the processes the benchmark starts itself."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from scripts.bench.common import APP_RUN, BENCH_APP_ENV, BENCH_SERVICES_ENV, ROOT, STACK_ENV, WORK, BenchError, run, say
from scripts.stacktools import parse_exports, recreate_topics


class Stack:
    """The full-mode platform of STACK=bench, driven through scripts/platform.sh."""

    def __init__(self, database_url: str) -> None:
        self.env = {**os.environ, **STACK_ENV, **BENCH_SERVICES_ENV, "DATABASE_URL": database_url, **BENCH_APP_ENV}
        for name in ("REDIS_URL", "ATOMICSEATS_ENV", "CELERY_BROKER_URL"):  # the bench stack's own
            self.env.pop(name, None)

    def platform(self, *args: str, timeout_s: float = 300) -> None:
        run(["bash", "scripts/platform.sh", *args], self.env, timeout_s, "platform.log")

    def start_async(self, *procs: str):
        """`platform.sh start <procs>` in the background, so the clock and the CPU meter can
        stop when the work is done rather than when the start script returns. Returns a
        function that waits for the script; it tolerates a readiness check that failed
        although the process runs (a log check can lose a race with a process that logs a
        lot at once)."""
        log = open(WORK / "platform.log", "a")  # noqa: SIM115 - closed by finish()
        log.write(f"\n--- {time.strftime('%F %T')} $ bash scripts/platform.sh start {' '.join(procs)}\n")
        log.flush()
        process = subprocess.Popen(
            ["bash", "scripts/platform.sh", "start", *procs],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def finish() -> None:
            try:
                code = process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait(10)
            log.close()
            if code == 0:
                return
            status = subprocess.run(
                ["bash", "scripts/platform.sh", "status"],
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout
            if not all(f"{proc} running" in status for proc in procs):
                raise BenchError(f"platform.sh start {' '.join(procs)} failed ({code}); see {WORK / 'platform.log'}")
            say(f"note: platform.sh start {' '.join(procs)} exited {code} although it runs (see platform.log)")

        return finish

    def app_env(self) -> dict:
        """The environment the platform's processes run with (for the CLI and the setup)."""
        out = subprocess.run(
            ["bash", "scripts/platform.sh", "env"], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60
        )
        if out.returncode != 0:
            raise BenchError(f"platform.sh env failed: {out.stderr[-500:]}")
        env = dict(self.env)
        env.update(parse_exports(out.stdout))
        env.update(parse_exports((APP_RUN / "secrets.env").read_text()))
        env.update(
            ATOMICSEATS_ENV="production",
            PIPELINE="kafka",
            COOKIE_SECURE="false",
            MAIL_SUPPRESS_SEND="false",
            LOG_LEVEL=env.get("LOG_LEVEL", "INFO"),
            LOG_JSON=env.get("LOG_JSON", "true"),
            FLASK_APP="wsgi",
        )
        return env


def services_env() -> dict:
    out = subprocess.run(
        ["bash", "scripts/services.sh", "env"],
        cwd=ROOT,
        env={**os.environ, **STACK_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise BenchError(f"services.sh env failed: {out.stderr[-500:]}")
    return parse_exports(out.stdout)


class Db:
    def __init__(self, url: str) -> None:
        import psycopg2

        self.connection = psycopg2.connect(url, connect_timeout=10)
        self.connection.autocommit = True

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def one(self, sql: str, params: tuple = ()) -> tuple:
        return self.rows(sql, params)[0]

    def close(self) -> None:
        self.connection.close()


def recreate_database(admin_url: str, name: str) -> str:
    import psycopg2

    connection = psycopg2.connect(admin_url, connect_timeout=10)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def fresh_database(server_url: str | None, name: str) -> str:
    """A fresh database `name` beside `server_url`, or on the bench stack's PostgreSQL (started
    if it is not running), made the process's DATABASE_URL for the embedded app of a standalone
    bench (the mailer's, the bare-SQL reference's). Returns its URL; migrating it is the caller's."""
    if not server_url:
        subprocess.run(
            ["bash", "scripts/services.sh", "start", "postgres"],
            cwd=ROOT,
            env={**os.environ, **STACK_ENV},
            check=True,
            timeout=600,
            stdout=subprocess.DEVNULL,
        )
        server_url = services_env()["DATABASE_URL"]
    url = recreate_database(server_url, name)
    os.environ.update({"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "PIPELINE": "embedded"})
    return url


def reset_kafka(brokers: str, deadline_s: float = 90) -> None:
    try:
        recreate_topics(brokers, deadline_s)
    except RuntimeError as error:
        raise BenchError(str(error)) from error


def stop_process_group(process: subprocess.Popen, timeout_s: float) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    except ProcessLookupError:
        pass


def platform_down() -> None:
    run(["bash", "scripts/platform.sh", "down"], {**os.environ, **STACK_ENV}, 300, "platform.log", check=False)
