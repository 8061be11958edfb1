"""Which secret signs a token: refresh tokens use REFRESH_TOKEN_SECRET, access tokens
JWT_SECRET_KEY (the seed's ACCESS_TOKEN_SECRET). flask-jwt-extended asks for the
signing key without saying which token type it signs, so the caller says it here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import current_app

_is_signing_refresh: ContextVar[bool] = ContextVar("is_signing_refresh", default=False)


@contextmanager
def signing_refresh_token() -> Iterator[None]:
    token = _is_signing_refresh.set(True)
    try:
        yield
    finally:
        _is_signing_refresh.reset(token)


def encoding_key(_identity: object) -> str:
    return _secret("REFRESH_TOKEN_SECRET" if _is_signing_refresh.get() else "JWT_SECRET_KEY")


def decoding_key(_header: dict[str, Any], unverified_claims: dict[str, Any]) -> str:
    """The claimed type only picks the key; the signature must still verify with it."""
    return _secret("REFRESH_TOKEN_SECRET" if unverified_claims.get("type") == "refresh" else "JWT_SECRET_KEY")


def _secret(name: str) -> str:
    secret = current_app.config[name]
    assert isinstance(secret, str), name
    return secret
