"""Configuration: production refuses to start without its secrets and URLs."""

from __future__ import annotations

import pytest

from config import (
    DEVELOPMENT_SECRETS,
    SECRET_LENGTH_MIN,
    SECRET_VARIABLES,
    TESTING_SECRETS,
    ConfigError,
    load_config,
)

PRODUCTION_ENV = {
    "SESSION_SECRET": "s" * 40,
    "ACCESS_TOKEN_SECRET": "a" * 40,
    "REFRESH_TOKEN_SECRET": "r" * 40,
    "DATABASE_URL": "postgresql://user:pass@db.example/atomicseats",
}


@pytest.mark.parametrize("missing", sorted(PRODUCTION_ENV))
def test_production_refuses_to_start_without(missing, monkeypatch):
    for name, value in PRODUCTION_ENV.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing, raising=False)
    with pytest.raises(ConfigError, match=missing):
        load_config("production")


def test_production_refuses_short_secrets(monkeypatch):
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ACCESS_TOKEN_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        load_config("production")


def test_production_has_no_demo_data_and_secure_cookies(monkeypatch):
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    config = load_config("production")
    assert config.SEED_DEMO_ALLOWED is False
    assert config.JWT_COOKIE_SECURE is True
    # The pages' session cookie (issue 10 point 5): Secure, HttpOnly, SameSite=Lax.
    assert config.SESSION_COOKIE_SECURE is True
    assert config.SESSION_COOKIE_HTTPONLY is True
    assert config.SESSION_COOKIE_SAMESITE == "Lax"


def test_seed_redis_variables_build_the_url(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PORT", "6380")
    monkeypatch.setenv("REDIS_PASSWORD", "pw")
    assert load_config("development").REDIS_URL == "redis://:pw@cache.internal:6380/0"


@pytest.mark.parametrize("value", ["abc", "0", "11"])
def test_bounded_settings_are_checked(value, monkeypatch):
    monkeypatch.setenv("SEATS_PER_REQUEST_MAX", value)
    with pytest.raises(ConfigError, match="SEATS_PER_REQUEST_MAX"):
        load_config("development")


def test_unknown_environment_name_is_refused():
    with pytest.raises(ConfigError, match="unknown configuration"):
        load_config("staging-ish")


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY", "REFRESH_TOKEN_SECRET"])
@pytest.mark.parametrize("defaults", [DEVELOPMENT_SECRETS, TESTING_SECRETS], ids=["development", "testing"])
def test_production_refuses_the_public_default_secrets_whatever_their_length(name, defaults, monkeypatch):
    """The development access secret is 33 characters: long enough, and public."""
    for variable, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv(SECRET_VARIABLES[name], defaults[name])
    with pytest.raises(ConfigError, match=f"{SECRET_VARIABLES[name]} is a development or testing default"):
        load_config("production")


def test_the_development_secrets_are_what_development_runs_with(monkeypatch):
    for variable in SECRET_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    config = load_config("development")
    assert {name: getattr(config, name) for name in DEVELOPMENT_SECRETS} == DEVELOPMENT_SECRETS
    assert len(DEVELOPMENT_SECRETS["JWT_SECRET_KEY"]) >= SECRET_LENGTH_MIN  # so the length rule alone let it through


def test_the_public_base_url_has_a_default_drops_a_trailing_slash_and_must_be_a_url(monkeypatch):
    assert load_config("testing").PUBLIC_BASE_URL == "http://127.0.0.1:5000"
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://tickets.example.com/")
    assert load_config("testing").PUBLIC_BASE_URL == "https://tickets.example.com"
    for wrong in ("tickets.example.com", "ftp://tickets.example.com", "https://", "https://x.example?a=1"):
        monkeypatch.setenv("PUBLIC_BASE_URL", wrong)
        with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
            load_config("testing")
