"""Configuration, one class per environment, read from environment variables.

Only development and testing have defaults. Production has none for secrets or
URLs and refuses to start without them. The variable names follow the seed
(`ACCESS_TOKEN_SECRET`, `REFRESH_TOKEN_SECRET`, `SESSION_SECRET`, `DATABASE_URL`,
`REDIS_URL` or `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`, `KAFKA_BROKER(S)`).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from atomicseats import names
from atomicseats.domain import limits

ROOT_DIR = Path(__file__).resolve().parent


class ConfigError(RuntimeError):
    """A required setting is missing or out of bounds."""


# The secrets development and testing run with: public (they are in this file), so
# production refuses them whatever their length (bandit's B105, hard-coded password, is
# answered on each of these dicts: they are meant to be known).
DEVELOPMENT_SECRETS = {  # nosec  # B105 (hard-coded password): public on purpose
    "SECRET_KEY": "dev-session-secret-change-me",
    "JWT_SECRET_KEY": "dev-access-token-secret-change-me",
    "REFRESH_TOKEN_SECRET": "dev-refresh-token-secret-change-me",
}
TESTING_SECRETS = {  # nosec  # B105 (hard-coded password): public on purpose
    "SECRET_KEY": "test-session-secret",
    "JWT_SECRET_KEY": "test-access-token-secret-0123456789abcdef",
    "REFRESH_TOKEN_SECRET": "test-refresh-token-secret-0123456789abcdef",
}
PUBLIC_SECRETS = frozenset(DEVELOPMENT_SECRETS.values()) | frozenset(TESTING_SECRETS.values())
SECRET_LENGTH_MIN = 32
DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:5000"  # where `make run` and `make up` serve the pages
TRUSTED_PROXY_HOPS_MAX = 5
SECRET_VARIABLES = {  # nosec  # B105 (hard-coded password): variable names
    "SECRET_KEY": "SESSION_SECRET",
    "JWT_SECRET_KEY": "ACCESS_TOKEN_SECRET",
    "REFRESH_TOKEN_SECRET": "REFRESH_TOKEN_SECRET",
}


def require_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required in this configuration")
    return value


def env_str(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from error
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be within {minimum}..{maximum}, got {value}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be a boolean (true/false), got {raw!r}")


def env_url(name: str, default: str) -> str:
    """An absolute http(s) URL without a trailing slash (a path may be appended to it)."""
    value = env_str(name, default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an http(s) URL such as https://tickets.example.com, got {value!r}")
    return value


def env_rate_limit(name: str, default: str) -> str:
    """A rate limit in the `limits` notation ("120 per minute"), checked at start-up."""
    from limits import parse_many

    value = env_str(name, default)
    try:
        parse_many(value)
    except ValueError as error:
        raise ConfigError(f"{name} must be a rate limit such as '120 per minute', got {value!r}") from error
    return value


def env_http_url(name: str) -> str:
    """An http(s) URL, or "" when unset: a link the pages show, so nothing else (no
    `javascript:`) is accepted."""
    value = os.environ.get(name, "").strip()
    if value and not (value.startswith(("http://", "https://")) and len(value) > len("https://")):
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {value!r}")
    return value


CORS_ANY_ORIGIN = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# An origin as browsers send it: host names in ASCII (an IDN in its xn-- form), IPv6 in brackets.
_ORIGIN = re.compile(r"(?P<scheme>https?)://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")


def env_origins(name: str) -> tuple[str, ...]:
    """Web origins, comma-separated, each exactly as a browser sends it in `Origin`:
    scheme://host[:port], lower case, no path (not even a trailing /), no default port; or
    `*` alone (any origin: safe only because CORS never allows credentials here, README
    "Cross-origin access"). Empty: none. Checked at start-up, so a typo never silently
    leaves a front end locked out (or another one let in)."""
    entries = [entry.strip() for entry in os.environ.get(name, "").split(",") if entry.strip()]
    if CORS_ANY_ORIGIN in entries:
        if len(entries) > 1:
            raise ConfigError(f"{name}: '*' (any origin) stands alone, not next to other origins")
        return (CORS_ANY_ORIGIN,)
    return tuple(dict.fromkeys(_checked_origin(name, entry) for entry in entries))


def _checked_origin(name: str, entry: str) -> str:
    if entry != entry.lower():
        raise ConfigError(f"{name}: write {entry.lower()!r}, in lower case as browsers send it, not {entry!r}")
    match = _ORIGIN.fullmatch(entry)
    port = int(match["port"]) if match and match["port"] else None
    if match is None or (port is not None and not 1 <= port <= 65535):
        raise ConfigError(
            f"{name}: {entry!r} is not an origin: scheme://host[:port] and nothing after it, "
            "e.g. https://shop.example.com or http://localhost:3000"
        )
    if port == _DEFAULT_PORTS[match["scheme"]]:
        raise ConfigError(f"{name}: leave the default port out of {entry!r} (browsers send no :{port})")
    return entry


def redis_url_from_env() -> str:
    """REDIS_URL wins; otherwise the seed's REDIS_HOST/PORT/PASSWORD; empty means no Redis."""
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        return url
    host = os.environ.get("REDIS_HOST", "").strip()
    if not host:
        return ""
    port = env_int("REDIS_PORT", 6379, 1, 65535)
    password = os.environ.get("REDIS_PASSWORD", "")
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"


def kafka_brokers_from_env() -> str:
    return os.environ.get("KAFKA_BROKERS", "").strip() or os.environ.get("KAFKA_BROKER", "").strip()


class BaseConfig:
    """Settings shared by every environment; subclasses fill in the secrets."""

    ENV_NAME = "base"

    def __init__(self) -> None:
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False
        # Connections kept open per process: as many as its threads use at once (the full API's
        # 8 Flask threads and 2 long-poll readers). The default 5 kept too few: under an
        # open-loop on-sale the API opened and closed an overflow connection per keyed booking
        # (a Postgres backend forked each time: a third of the API's and most of Postgres's
        # CPU at 260 bookings/s).
        self.SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_size": env_int("DATABASE_POOL_SIZE", 10, 1, 100)}
        self.MAX_CONTENT_LENGTH = limits.JSON_BODY_BYTES_MAX
        self.JSON_SORT_KEYS = False

        self.JWT_TOKEN_LOCATION = ["headers", "cookies"]
        self.JWT_ACCESS_TOKEN_EXPIRES = timedelta(minutes=env_int("ACCESS_TOKEN_EXPIRY_MIN", 15, 1, 1440))
        self.JWT_REFRESH_TOKEN_EXPIRES = timedelta(days=env_int("REFRESH_TOKEN_EXPIRY_DAYS", 7, 1, 90))
        self.JWT_ACCESS_COOKIE_NAME = "accessToken"
        self.JWT_REFRESH_COOKIE_NAME = "refreshToken"
        self.JWT_COOKIE_SAMESITE = "Lax"
        self.JWT_COOKIE_SECURE = env_bool("COOKIE_SECURE", False)
        # Cookie-authenticated writes need the CSRF double-submit header; bearer
        # tokens (API clients) are not sent automatically by browsers, so they don't.
        self.JWT_COOKIE_CSRF_PROTECT = True
        self.JWT_REFRESH_JSON_KEY = "refreshToken"
        # The browser sends the refresh cookie to the refresh route only, not with every
        # request (logout still clears it: flask-jwt-extended unsets it on this path).
        self.JWT_REFRESH_COOKIE_PATH = "/api/user/refresh"
        self.JWT_ALGORITHM = "HS256"
        self.JWT_DECODE_ALGORITHMS = ["HS256"]
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = env_bool("COOKIE_SECURE", False)

        self.SEATS_PER_REQUEST_MAX = env_int(
            "SEATS_PER_REQUEST_MAX", limits.SEATS_PER_REQUEST_MAX, 1, limits.SEATS_PER_REQUEST_MAX
        )
        self.RATELIMIT_AUTH = env_str("RATELIMIT_AUTH", "10 per minute")
        # Per signed-in user on POST /api/events/book: one account cannot flood an on-sale.
        # Generous: `make bench` books ~1,100 requests/s from 200 guests (~340 per guest and
        # minute); this default leaves it 3.5x headroom (4,000/s from 200 guests).
        self.RATELIMIT_BOOKING = env_rate_limit("RATELIMIT_BOOKING", "1200 per minute")
        self.RATELIMIT_ENABLED = env_bool("RATELIMIT_ENABLED", True)
        # Proxies in front of the API that append to X-Forwarded-For (a load balancer: 1).
        # 0 trusts no forwarded header: rate limits key on the socket's address.
        self.TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0, 0, TRUSTED_PROXY_HOPS_MAX)
        # Web origins whose pages may call the JSON API (/api/...) from the browser with a bearer
        # token: CORS through flask-cors (atomicseats/cors.py), never with credentials (cookies).
        # Empty, the default: no CORS header at all.
        self.CORS_ALLOWED_ORIGINS = env_origins("CORS_ALLOWED_ORIGINS")
        self.REDIS_URL = redis_url_from_env()
        self.KAFKA_BROKERS = kafka_brokers_from_env()
        # "embedded": the allocation runs in-process right after the request is
        # recorded. "kafka": requests go through Kafka, the bridge and Celery.
        self.PIPELINE = env_str("PIPELINE", "kafka" if self.KAFKA_BROKERS else "embedded")
        self.KAFKA_PARTITIONS = env_int("KAFKA_PARTITIONS", names.BOOKING_REQUESTS_PARTITIONS, 1, 1024)
        # How long the API's producer gathers requests into one produce request: longer is
        # fewer, bigger requests for the broker, and that much more time before a 202.
        self.KAFKA_LINGER_MS = env_int("KAFKA_LINGER_MS", 5, 0, 1000)
        # The bridge ends itself (its supervisor starts a fresh one) when requests have waited on
        # its partitions this long with its offsets standing still, or when its loop has not come
        # round this long (a call that never returned): atomicseats/liveness.py.
        self.BRIDGE_STALL_S = env_int("BRIDGE_STALL_S", 20, 1, 3600)
        self.BRIDGE_HUNG_S = env_int("BRIDGE_HUNG_S", 60, 1, 3600)
        self.CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "").strip()
        # The bridge, the Celery workers and the mailer serve their Prometheus metrics here (each
        # process its own port; 0 = none). The API answers at /metrics on its own port.
        self.METRICS_PORT = env_int("METRICS_PORT", 0, 0, 65535)
        self.METRICS_HOST = env_str("METRICS_HOST", "127.0.0.1")
        # Celery beat touches this file whenever it sends a task (every few seconds): `flask health
        # beat` checks it is recent. Empty: beat keeps none.
        self.BEAT_HEARTBEAT_FILE = os.environ.get("BEAT_HEARTBEAT_FILE", "").strip()
        # The embedded default has no Celery beat: its server runs the periodic work (closing
        # the sales of started events, retrying due e-mails) on a thread this often; 0 = never.
        self.EMBEDDED_BEAT_INTERVAL_S = env_int("EMBEDDED_BEAT_INTERVAL_S", 30, 0, 3600)
        # The embedded default records and decides the bookings a server process receives
        # together in one transaction (group commit); false: each booking alone, in its own
        # two transactions (the former behaviour: for comparison, and for the concurrency
        # tests that race allocations against the event row lock).
        self.EMBEDDED_GROUP_COMMIT = env_bool("EMBEDDED_GROUP_COMMIT", True)
        # Retention (`flask purge`, Celery beat's purge task): decided booking requests, delivered
        # outbox rows and ended login sessions older than this many days are deleted
        # (services/retention.py says what always stays).
        self.RETENTION_REQUESTS_DAYS = env_int("RETENTION_REQUESTS_DAYS", 180, limits.RETENTION_DAYS_MIN, 3650)
        self.RETENTION_OUTBOX_DAYS = env_int("RETENTION_OUTBOX_DAYS", 30, limits.RETENTION_DAYS_MIN, 3650)
        self.RETENTION_SESSIONS_DAYS = env_int("RETENTION_SESSIONS_DAYS", 30, limits.RETENTION_DAYS_MIN, 3650)
        if self.PIPELINE not in {"embedded", "kafka"}:
            raise ConfigError(f"PIPELINE must be 'embedded' or 'kafka', got {self.PIPELINE!r}")

        self.MAIL_SERVER = env_str("MAIL_SERVER", "127.0.0.1")
        self.MAIL_PORT = env_int("MAIL_PORT", 25, 1, 65535)
        self.MAIL_USE_TLS = env_bool("MAIL_USE_TLS", False)
        self.MAIL_USE_SSL = env_bool("MAIL_USE_SSL", False)
        self.MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
        self.MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
        self.MAIL_DEFAULT_SENDER = env_str("MAIL_DEFAULT_SENDER", "AtomicSeats <no-reply@atomicseats.local>")
        # SMTP sessions a mailer process opens in parallel for a big batch (threads: each SMTP
        # command is a round trip). 1 against a local server; more for a relay across a network.
        self.MAIL_SMTP_SESSIONS = env_int("MAIL_SMTP_SESSIONS", 1, 1, limits.MAIL_SMTP_SESSIONS_MAX)
        # Without a configured SMTP server, e-mails are logged instead of sent.
        self.MAIL_SUPPRESS_SEND = env_bool("MAIL_SUPPRESS_SEND", not os.environ.get("MAIL_SERVER"))
        # Where people reach the pages: the links in every e-mail (event page, My bookings) start here.
        self.PUBLIC_BASE_URL = env_url("PUBLIC_BASE_URL", DEFAULT_PUBLIC_BASE_URL)

        self.LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
        self.LOG_JSON = env_bool("LOG_JSON", True)
        # Loggers that log DEBUG as well, comma-separated: per-request lines are DEBUG
        # (atomicseats.http: every HTTP request; atomicseats.bridge: every bridged request).
        self.LOG_DEBUG = tuple(name.strip() for name in env_str("LOG_DEBUG", "").split(",") if name.strip())
        self.SEED_DEMO_ALLOWED = False
        # Where admins find Flower (Celery's monitor): the admin pages link to it when set.
        self.FLOWER_URL = env_http_url("FLOWER_URL")


class DevelopmentConfig(BaseConfig):
    """The embedded default: SQLite file, in-process pipeline, demo data allowed."""

    ENV_NAME = "development"

    def __init__(self) -> None:
        super().__init__()
        instance_dir = ROOT_DIR / "instance"
        self.SECRET_KEY = env_str("SESSION_SECRET", DEVELOPMENT_SECRETS["SECRET_KEY"])
        self.JWT_SECRET_KEY = env_str("ACCESS_TOKEN_SECRET", DEVELOPMENT_SECRETS["JWT_SECRET_KEY"])
        self.REFRESH_TOKEN_SECRET = env_str("REFRESH_TOKEN_SECRET", DEVELOPMENT_SECRETS["REFRESH_TOKEN_SECRET"])
        self.SQLALCHEMY_DATABASE_URI = env_str("DATABASE_URL", f"sqlite:///{instance_dir / 'atomicseats.db'}")
        self.SEED_DEMO_ALLOWED = True
        self.LOG_JSON = env_bool("LOG_JSON", False)


class TestingConfig(BaseConfig):
    """Tests: every URL may be overridden by TEST_* variables set by `make test`."""

    ENV_NAME = "testing"

    def __init__(self) -> None:
        super().__init__()
        self.TESTING = True
        self.SECRET_KEY = TESTING_SECRETS["SECRET_KEY"]
        self.JWT_SECRET_KEY = TESTING_SECRETS["JWT_SECRET_KEY"]
        self.REFRESH_TOKEN_SECRET = TESTING_SECRETS["REFRESH_TOKEN_SECRET"]
        self.SQLALCHEMY_DATABASE_URI = env_str("TEST_DATABASE_URL", "sqlite://")
        self.REDIS_URL = os.environ.get("TEST_REDIS_URL", "").strip()
        self.KAFKA_BROKERS = ""
        self.PIPELINE = "embedded"
        self.EMBEDDED_BEAT_INTERVAL_S = 0  # a test that wants it turns it on
        self.SEED_DEMO_ALLOWED = True
        self.RATELIMIT_ENABLED = False
        self.MAIL_SUPPRESS_SEND = True


class ProductionConfig(BaseConfig):
    """No defaults for secrets or URLs: refuse to start without them."""

    ENV_NAME = "production"

    def __init__(self) -> None:
        super().__init__()
        self.SECRET_KEY = require_env("SESSION_SECRET")
        self.JWT_SECRET_KEY = require_env("ACCESS_TOKEN_SECRET")
        self.REFRESH_TOKEN_SECRET = require_env("REFRESH_TOKEN_SECRET")
        self.SQLALCHEMY_DATABASE_URI = require_env("DATABASE_URL")
        self.JWT_COOKIE_SECURE = env_bool("COOKIE_SECURE", True)
        self.SESSION_COOKIE_SECURE = self.JWT_COOKIE_SECURE
        for name, variable in SECRET_VARIABLES.items():
            if getattr(self, name) in PUBLIC_SECRETS:
                raise ConfigError(f"{variable} is a development or testing default: set a secret of your own")
            if len(getattr(self, name)) < SECRET_LENGTH_MIN:
                raise ConfigError(f"{variable} must be at least {SECRET_LENGTH_MIN} characters in production")


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def load_config(config_name: str | None = None) -> BaseConfig:
    name = config_name or os.environ.get("ATOMICSEATS_ENV", "development")
    if name not in CONFIGS:
        raise ConfigError(f"unknown configuration {name!r}; choose one of {sorted(CONFIGS)}")
    return CONFIGS[name]()
