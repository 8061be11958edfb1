"""Typed errors, each with an HTTP status. Plain Python so any layer may raise them."""

from __future__ import annotations


class AtomicSeatsError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, errors: dict | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.headers = headers or {}


class InvalidInput(AtomicSeatsError):
    status = 400
    code = "invalid_input"


class NotAuthenticated(AtomicSeatsError):
    status = 401
    code = "not_authenticated"


class Forbidden(AtomicSeatsError):
    status = 403
    code = "forbidden"


class AccountDisabled(Forbidden):
    """The password was right, but an operator disabled the account (`flask users disable`)."""

    code = "account_disabled"

    def __init__(self) -> None:
        super().__init__("This account is disabled. Ask an administrator to enable it.")


class NotFound(AtomicSeatsError):
    status = 404
    code = "not_found"


class Conflict(AtomicSeatsError):
    status = 409
    code = "conflict"


class ServiceBusy(AtomicSeatsError):
    """A lock or a dependency did not answer in time: retry later."""

    status = 503
    code = "busy"

    def __init__(self, message: str = "The service is busy, please retry shortly", retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class RateLimited(AtomicSeatsError):
    """A quota of this user (or address) is used up for the current window."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: int, message: str = "Too many requests, slow down") -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))})
