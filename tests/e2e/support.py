"""The end-to-end harness: the real platform (scripts/services.sh + scripts/platform.sh) on
STACK=e2e, driven over HTTP, Kafka, Postgres and the SMTP sink's files. No mocks.

`Platform` is what the tests get from the session fixture in conftest.py. Every wait
polls against a deadline; every subprocess has a timeout.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from pathlib import Path

import psycopg2
from argon2 import PasswordHasher
from confluent_kafka import OFFSET_BEGINNING, Consumer, ConsumerGroupTopicPartitions, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.helpers import Account, create_admin_args, registration

REPO_ROOT = Path(__file__).resolve().parents[2]
# One e2e stack per checkout at a time; a second checkout on the same machine picks its own
# name and port block (E2E_STACK=e2e2 E2E_PORT_OFFSET=400) so the two never share a port.
STACK = os.environ.get("E2E_STACK", "e2e")
STACK_PORT_OFFSET = os.environ.get("E2E_PORT_OFFSET", "300")
PASSWORD = "e2e-correct-horse-battery"
FINAL_STATUSES = frozenset({"confirmed", "partial", "waitlisted", "rejected"})
MESSAGE_ID_DOMAIN = "atomicseats.local"
APP_PROCS = ("bridge", "worker", "mailer", "beat", "api")
# Variables a developer's shell may carry for another stack: never let them leak into this one
# (platform.sh keeps a caller's DATABASE_URL and REDIS_URL on purpose).
SCRUBBED_ENV = (
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_HOST",
    "KAFKA_BROKERS",
    "KAFKA_BROKER",
    "CELERY_BROKER_URL",
    "MAIL_SERVER",
    "MAIL_PORT",
    "MAIL_SUPPRESS_SEND",
    "SMTP_SINK_DIR",
    "API_PORT",
    "FLOWER_PORT",
    "FLOWER_URL",
    "FLOWER_BASIC_AUTH",
    "ATOMICSEATS_ENV",
    "PIPELINE",
    "TEST_DATABASE_URL",
    "TEST_REDIS_URL",
)
HTTP_TIMEOUT_S = 15.0
ROSTER_PAGE_SIZE = 1000  # the API's largest roster page (domain/limits.py ROSTER_PAGE_SIZE_MAX)
ROSTER_PAGES_MAX = 100
# What a connection to a dying or absent API looks like.
CONNECTION_ERRORS = (urllib.error.URLError, ConnectionError, HTTPException, TimeoutError, socket.timeout, OSError)

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A name no other test of this session (or an earlier session) uses."""
    return f"{prefix}{next(_names)}{uuid.uuid4().hex[:6]}"


def expected_message_id(kind: str, subject_key: str) -> str:
    """The outbox's stable Message-ID, e.g. <booking.confirmed.REQUEST-ID@atomicseats.local>."""
    return f"<{kind}.{subject_key}@{MESSAGE_ID_DOMAIN}>"


def decision_message_id(status: str, request_id: str) -> str:
    return expected_message_id(f"booking.{status}", request_id)


def poll(check: Callable[[], object], timeout_s: float, interval_s: float = 0.2, what: str = "condition"):
    """Call `check` until it returns something truthy; AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


# --- processes -----------------------------------------------------------------------


def run(args: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Run a command from the repository root; (exit code, stdout+stderr)."""
    completed = subprocess.run(
        args,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
    )
    return completed.returncode, completed.stdout


def run_checked(args: list[str], env: dict[str, str], timeout_s: float) -> str:
    code, output = run(args, env, timeout_s)
    if code != 0:
        raise AssertionError(f"{' '.join(args)} exited {code}:\n{output[-4000:]}")
    return output


def stack_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in SCRUBBED_ENV}
    env.update(STACK=STACK, STACK_PORT_OFFSET=STACK_PORT_OFFSET, **extra)
    return env


# --- HTTP ----------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: dict | None
    elapsed_s: float

    @property
    def data(self) -> dict:
        assert self.body is not None and "data" in self.body, (self.status, self.body)
        return self.body["data"]

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Http:
    """A tiny JSON client over urllib (no extra dependency). Connection errors propagate."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = HTTP_TIMEOUT_S,
    ) -> Response:
        all_headers = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base_url + path, data=data, headers=all_headers, method=method)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as answer:
                status, raw_headers, raw = answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            status, raw_headers, raw = error.code, error.headers, error.read()
        elapsed_s = time.monotonic() - started
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = {"raw": raw[:500].decode(errors="replace")}
        headers_out = {name.lower(): value for name, value in raw_headers.items()}
        return Response(status, headers_out, parsed, elapsed_s)


# --- e-mail --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    path: Path
    message_id: str
    to: str
    rcpt_to: str
    subject: str
    kind: str | None
    text: str


def parse_mail(path: Path) -> Mail:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    message_ids = message.get_all("Message-ID") or []
    assert len(message_ids) == 1, f"{path.name}: {len(message_ids)} Message-ID headers: {message_ids}"
    body = message.get_body(preferencelist=("plain",))
    return Mail(
        path=path,
        message_id=str(message_ids[0]).strip(),
        to=str(message["To"]),
        rcpt_to=str(message["X-RcptTo"]),
        subject=str(message["Subject"]),
        kind=message.get("X-AtomicSeats-Kind"),
        text=body.get_content() if body is not None else "",
    )


# --- the platform --------------------------------------------------------------------


@dataclass
class Platform:
    env: dict[str, str]  # what the app processes and `flask` commands run with
    script_env: dict[str, str]  # what platform.sh / services.sh are called with
    api_url: str
    database_url: str
    sink_dir: Path
    app_run_dir: Path
    admin: Account | None = None
    log_offsets: dict[str, int] = field(default_factory=dict)  # where this session's lines begin
    _mail_cache: dict[str, Mail] = field(default_factory=dict)
    _mail_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.http = Http(self.api_url)

    # processes and services
    def platform_sh(self, *args: str, timeout_s: float = 120) -> str:
        return run_checked(["bash", "scripts/platform.sh", *args], self.script_env, timeout_s)

    def services_sh(self, *args: str, timeout_s: float = 180) -> str:
        return run_checked(["bash", "scripts/services.sh", *args], self.script_env, timeout_s)

    def kill(self, proc: str) -> None:
        """SIGKILL the process group of an app process (api | bridge | worker | mailer | beat)."""
        self.platform_sh("kill", proc)

    def start(self, proc: str) -> None:
        self.platform_sh("start", proc)

    def pause(self, proc: str) -> None:
        """SIGSTOP an app process's whole group (its restart loop included): it holds still,
        connections open, until `resume` (no restart, no rebalance if resumed within seconds)."""
        os.killpg(self._process_group(proc), signal.SIGSTOP)

    def resume(self, proc: str) -> None:
        os.killpg(self._process_group(proc), signal.SIGCONT)

    def _process_group(self, proc: str) -> int:
        """platform.sh starts each process under setsid: its pid file names the group's leader."""
        return int((self.app_run_dir / f"{proc}.pid").read_text().strip())

    def is_running(self, proc: str) -> bool:
        return f"{proc} running" in self.platform_sh("status")

    def restart_service(self, name: str) -> None:
        self.services_sh("restart", name)

    def kill_service(self, name: str) -> None:
        """SIGKILL a backing service and its children at once, as a crash would (Postgres: the
        postmaster and every backend; `start_service` then brings it back through crash recovery)."""
        self.services_sh("kill", name)

    def stop_service(self, *names: str) -> None:
        self.services_sh("stop", *names)

    def start_service(self, *names: str) -> None:
        self.services_sh("start", *names)

    def flask(self, *args: str, timeout_s: float = 120) -> tuple[int, str]:
        return run([str(REPO_ROOT / ".venv/bin/flask"), "--app", "wsgi", *args], self.env, timeout_s)

    def run_audit(self) -> tuple[int, str]:
        return self.flask("audit", "--pending-grace-s", "0")

    def app_log_size(self, proc: str) -> int:
        path = self.app_run_dir / f"{proc}.log"
        return path.stat().st_size if path.exists() else 0

    def app_log(self, proc: str, since: int | None = None) -> str:
        """What the process logged since byte `since` (default: since this session began;
        platform.sh appends every run's lines to the same file)."""
        path = self.app_run_dir / f"{proc}.log"
        if not path.exists():
            return ""
        with open(path, "rb") as log_file:
            log_file.seek(self.log_offsets.get(proc, 0) if since is None else since)
            return log_file.read().decode(errors="replace")

    # Postgres
    def sql(self, query: str, params: Iterable | dict | None = None) -> list[tuple]:
        connection = psycopg2.connect(self.database_url, connect_timeout=5)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    # accounts and events
    def register(self, role: str = "guest", username: str | None = None) -> Account:
        username = username or unique(f"e2e{role[0]}")
        name = f"E2E {username}"
        response = self.http.request("POST", "/api/user/register", registration(username, role, name, PASSWORD))
        assert response.status == 201, (response.status, response.body)
        return self.login(username, name=name)

    def login(self, username: str, name: str = "") -> Account:
        response = self.http.request("POST", "/api/user/login", {"username": username, "password": PASSWORD})
        assert response.status == 200, (response.status, response.body)
        return Account.from_login(response.data, name)

    def register_many(self, count: int, role: str = "guest", prefix: str = "e2eg") -> list[Account]:
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda _: self.register(role, unique(prefix)), range(count)))

    def seed_guests(self, count: int, prefix: str = "e2ecrowd") -> list[Account]:
        """Many guests at once: rows written straight into `users` with a cheap argon2 hash
        of the same password, then each one logs in through the real API.

        Registering through the API hashes with production argon2 settings (64 MiB, t=3):
        about half a second of this 2-core machine per account, which would spend most of
        the suite's time budget on sign-ups. Login verifies with the parameters stored in
        the hash, so it stays the real code path at a fraction of the cost."""
        password_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
        usernames = [unique(prefix) for _ in range(count)]
        rows = [(username, f"E2E {username}", f"{username}@example.test", password_hash) for username in usernames]
        connection = psycopg2.connect(self.database_url, connect_timeout=5)
        try:
            with connection, connection.cursor() as cursor:
                for row in rows:
                    cursor.execute(
                        "INSERT INTO users (username, name, email, password_hash, role, created_at)"
                        " VALUES (%s, %s, %s, %s, 'guest', now())",
                        row,
                    )
        finally:
            connection.close()
        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda row: self.login(row[0], name=row[1]), rows))

    def create_admin(self) -> Account:
        username = unique("e2eadmin")
        code, output = self.flask(*create_admin_args(username, PASSWORD))
        assert code == 0, output
        return self.login(username)

    def create_event(self, host: Account, capacity: int, name: str | None = None, **overrides) -> dict:
        starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        payload = {
            "name": name or unique("E2E Event "),
            "description": "end-to-end test event",
            "venue": "E2E Hall",
            "startsAt": starts_at.isoformat(),
            "endsAt": (starts_at + timedelta(hours=2)).isoformat(),
            "capacity": capacity,
            "price": 1000,
            **overrides,
        }
        response = self.http.request("POST", "/api/events/create", payload, token=host.access_token)
        assert response.status == 201, (response.status, response.body)
        return response.data

    def roster(self, host: Account, event_id: int) -> dict:
        """The whole roster: its pages (bookings, then the waitlist) walked and merged."""
        merged: dict | None = None
        cursor = ""
        for _ in range(ROSTER_PAGES_MAX):
            query = f"?limit={ROSTER_PAGE_SIZE}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            response = self.http.request("GET", f"/api/events/{event_id}/roster{query}", token=host.access_token)
            assert response.status == 200, (response.status, response.body)
            page = response.data
            if merged is None:
                merged = page
            else:
                merged["bookings"] += page["bookings"]
                merged["waitlist"] += page["waitlist"]
            if not page["pageInfo"]["hasMore"]:
                return merged
            cursor = page["pageInfo"]["nextCursor"]
        raise AssertionError(f"the roster of event {event_id} did not end within {ROSTER_PAGES_MAX} pages")

    # booking
    def book(
        self,
        guest: Account,
        event_id: int,
        seats: int,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        timeout_s: float = HTTP_TIMEOUT_S,
    ) -> Response:
        headers = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if correlation_id is not None:
            headers["X-Request-ID"] = correlation_id
        return self.http.request(
            "POST",
            "/api/events/book",
            {"eventId": event_id, "numberOfSeats": seats},
            token=guest.access_token,
            headers=headers,
            timeout_s=timeout_s,
        )

    def book_accepted(self, guest: Account, event_id: int, seats: int, **kwargs) -> str:
        response = self.book(guest, event_id, seats, **kwargs)
        assert response.status == 202, (response.status, response.body)
        return response.data["requestId"]

    def cancel(self, guest: Account, event_id: int, booking_id: int | None = None, cancel_all: bool = False) -> dict:
        body: dict = {"eventId": event_id}
        if booking_id is not None:
            body["bookingId"] = booking_id
        if cancel_all:
            body["cancelAll"] = True
        response = self.http.request("DELETE", "/api/events/book", body, token=guest.access_token)
        assert response.status == 200, (response.status, response.body)
        return response.data

    def status(self, request_id: str, token: str | None = None, wait_s: float = 0) -> Response:
        path = f"/api/bookings/requests/{request_id}"
        if wait_s:
            path += f"?wait={wait_s:g}"
        return self.http.request("GET", path, token=token or self.admin.access_token, timeout_s=wait_s + HTTP_TIMEOUT_S)

    def wait_final(self, request_id: str, token: str | None = None, timeout_s: float = 30) -> dict:
        return self.wait_until_all_final([request_id], timeout_s, token=token)[request_id]

    def wait_until_all_final(
        self, request_ids: Iterable[str], timeout_s: float, token: str | None = None
    ) -> dict[str, dict]:
        """Long-poll GET /api/bookings/requests/<id>?wait=… until every request is final.
        The admin sees every request; returns request id → status data."""
        deadline = time.monotonic() + timeout_s
        outstanding = list(dict.fromkeys(request_ids))
        final: dict[str, dict] = {}

        def poll_one(request_id: str) -> tuple[str, dict | None]:
            wait_s = max(0.0, min(2.0, deadline - time.monotonic()))
            try:
                response = self.status(request_id, token=token, wait_s=round(wait_s, 1))
            except CONNECTION_ERRORS:
                return request_id, None
            if response.status == 200 and response.data["status"] in FINAL_STATUSES:
                return request_id, response.data
            assert response.status in (200, 404, 503), (request_id, response.status, response.body)
            # Pending, not yet known to this API (registry lost), or a status the API was too busy
            # to read by the wait's deadline (503): asked again on the next round, as a client does.
            return request_id, None

        with ThreadPoolExecutor(16) as pool:
            while outstanding:
                for request_id, data in pool.map(poll_one, outstanding):
                    if data is not None:
                        final[request_id] = data
                outstanding = [request_id for request_id in outstanding if request_id not in final]
                if outstanding and time.monotonic() > deadline:
                    rows = self.sql(
                        "SELECT request_id, status FROM booking_requests WHERE request_id = ANY(%s)",
                        (outstanding[:20],),
                    )
                    raise AssertionError(
                        f"{len(outstanding)} request(s) not final after {timeout_s}s, e.g. {outstanding[:5]}; "
                        f"rows: {rows[:5]}"
                    )
                if outstanding:
                    time.sleep(0.1)
        return final

    # e-mail
    def mails(self) -> list[Mail]:
        """Every message the SMTP sink stored (parsed once each), in arrival order."""
        with self._mail_lock:
            for path in self.sink_dir.glob("*.eml"):
                if path.name not in self._mail_cache:
                    self._mail_cache[path.name] = parse_mail(path)
            # By name, as before by path: the sink names its files by arrival (time, pid, counter).
            return [self._mail_cache[name] for name in sorted(self._mail_cache)]

    def mails_by_message_id(self) -> dict[str, list[Mail]]:
        grouped: dict[str, list[Mail]] = {}
        for mail in self.mails():
            grouped.setdefault(mail.message_id, []).append(mail)
        return grouped

    def wait_for_mails(self, message_ids: Iterable[str], timeout_s: float) -> dict[str, list[Mail]]:
        wanted = set(message_ids)

        def all_there():
            grouped = self.mails_by_message_id()
            return grouped if wanted <= set(grouped) else None

        try:
            grouped = poll(all_there, timeout_s, 0.5, "e-mails")
        except AssertionError as timeout:
            missing = sorted(wanted - set(self.mails_by_message_id()))
            rows = self.sql(
                "SELECT message_id, status, attempts, next_attempt_at, last_error FROM outbox"
                " WHERE message_id = ANY(%s) LIMIT 10",
                (missing,),
            )
            raise AssertionError(
                f"{len(missing)} e-mail(s) never arrived, e.g. {missing[:5]}; outbox rows: {rows}"
            ) from timeout
        return {message_id: grouped[message_id] for message_id in wanted}


# --- background load for the fault tests ---------------------------------------------


@dataclass
class Attempt:
    guest: Account
    event_id: int
    seats: int
    idempotency_key: str
    status: int | None = None  # HTTP status, None for a connection error / timeout
    error: str | None = None
    retry_after: str | None = None
    request_id: str | None = None
    answered_at: float = 0.0
    answers: list[tuple[int | None, str | None]] = field(default_factory=list)  # (status, Retry-After) per try


class BookingLoad:
    """Threads sending booking requests at a modest rate until stopped.

    Every attempt carries its own Idempotency-Key, so one that got no 2xx can be retried
    safely afterwards. Only a 2xx counts as accepted; connection errors and 5xx do not.
    """

    def __init__(
        self,
        platform: Platform,
        guests: list[Account],
        event_ids: list[int],
        threads: int = 4,
        rate_per_s: float = 12.0,
        timeout_s: float = 10.0,
        seed: int = 7,
    ) -> None:
        self.platform = platform
        self.guests = guests
        self.event_ids = event_ids
        self.threads = threads
        self.interval_s = threads / rate_per_s
        self.timeout_s = timeout_s
        self.rng = random.Random(seed)
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def __enter__(self) -> BookingLoad:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"e2e-load-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(self.timeout_s + 5)
        assert not any(worker.is_alive() for worker in self._workers), "load threads did not stop"
        self._workers = []

    def _next_attempt(self) -> Attempt:
        with self._lock:
            attempt = Attempt(
                guest=self.rng.choice(self.guests),
                event_id=self.rng.choice(self.event_ids),
                seats=self.rng.randint(1, 3),
                idempotency_key=f"load-{uuid.uuid4().hex}",
            )
            self.attempts.append(attempt)
        return attempt

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.send(self._next_attempt())
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def send(self, attempt: Attempt) -> None:
        try:
            response = self.platform.book(
                attempt.guest, attempt.event_id, attempt.seats, attempt.idempotency_key, timeout_s=self.timeout_s
            )
        except CONNECTION_ERRORS as error:
            attempt.status, attempt.error = None, f"{type(error).__name__}: {error}"[:200]
        else:
            attempt.status = response.status
            attempt.retry_after = response.header("Retry-After")
            if 200 <= response.status < 300:
                attempt.request_id = response.data["requestId"]
            else:
                attempt.error = str((response.body or {}).get("message"))[:200]
        attempt.answered_at = time.monotonic()
        attempt.answers.append((attempt.status, attempt.retry_after))

    @property
    def accepted(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.request_id is not None]

    @property
    def unanswered(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.request_id is None]

    def outcome_counts(self) -> Counter:
        """Every answer the load got (retries included): HTTP status or 'connection-error'."""
        return Counter(
            str(status) if status else "connection-error" for attempt in self.attempts for status, _ in attempt.answers
        )

    def refusals(self, status: int) -> list[tuple[Attempt, str | None]]:
        return [
            (attempt, retry_after)
            for attempt in self.attempts
            for answered, retry_after in attempt.answers
            if answered == status
        ]

    def retry_unanswered(self, timeout_s: float = 30.0) -> list[Attempt]:
        """Retry every attempt that got no 2xx with the same Idempotency-Key until it is accepted."""
        deadline = time.monotonic() + timeout_s
        retried = self.unanswered
        waiting = list(retried)
        while waiting:  # rounds: every attempt still unanswered is sent again, then a pause
            for attempt in waiting:
                # Not accepted: a connection error, or 5xx (503: busy). Anything else is a bug.
                assert attempt.status is None or attempt.status >= 500, (attempt.status, attempt.error)
                assert time.monotonic() < deadline, f"retry of {attempt.idempotency_key} never accepted: {attempt}"
                self.send(attempt)
            waiting = [attempt for attempt in waiting if attempt.request_id is None]
            if waiting:
                time.sleep(0.5)
        return retried


# --- Kafka ---------------------------------------------------------------------------


def read_topic(brokers: str, topic: str, timeout_s: float = 30.0) -> list[Message]:
    """Every message now in `topic`, read from the beginning by a fresh consumer group."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": unique("e2e-reader-"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "log_level": 2,
        }
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        high = {
            partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in partitions
        }
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        done = {partition for partition in partitions if high[partition] == 0}
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(done) < len(partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end: {high}, done {done}"
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            messages.append(message)
            if message.offset() >= high[message.partition()] - 1:
                done.add(message.partition())
        return messages
    finally:
        consumer.close()


def end_offsets(brokers: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": unique("e2e-ends-"), "log_level": 2})
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        return {
            partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in partitions
        }
    finally:
        consumer.close()


def committed_offsets(brokers: str, group: str, topic: str) -> dict[int, int]:
    admin = AdminClient({"bootstrap.servers": brokers, "log_level": 2})
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=10)[group]
    return {
        item.partition: item.offset
        for item in future.result().topic_partitions
        if item.topic == topic and item.offset >= 0
    }


def has_consumed_to(brokers: str, group: str, topic: str, ends: dict[int, int]) -> bool:
    """True once `group` has committed every partition of `topic` up to `ends`."""
    committed = committed_offsets(brokers, group, topic)
    return all(committed.get(partition, 0) >= end for partition, end in ends.items())


def produce_again(brokers: str, messages: list[Message]) -> None:
    """Put the very same messages (partition, key, value, headers) on their topic again."""
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all", "log_level": 2})
    failures = []

    def on_delivery(error, _message):
        if error is not None:
            failures.append(error)

    for message in messages:
        producer.produce(
            message.topic(),
            key=message.key(),
            value=message.value(),
            headers=message.headers() or [],
            partition=message.partition(),
            on_delivery=on_delivery,
        )
        producer.poll(0)
    assert producer.flush(30) == 0, "re-produced messages not all acknowledged"
    assert not failures, failures
