"""Typed errors, each with an HTTP status and a stable machine-readable code. Plain Python so
any layer may raise them.

ERROR_CODES is the one catalogue of the `code` a JSON error carries next to its message: the
HTTP edge puts it in the envelope, the OpenAPI document lists it, and clients may branch on
it. A code, once published, keeps its meaning; a raise site names a more precise code than
its class's only when a client can act on the difference.
"""

from __future__ import annotations

ERROR_CODES: dict[str, str] = {  # nosec  # B105 (hard-coded password): "token_expired" is a code
    "invalid_input": "A field, parameter or header is invalid: `errors` names each one",
    "malformed_request": "The request could not be read at all",
    "not_authenticated": "No valid, live access token (missing, invalid or revoked): log in",
    "token_expired": "The access token has expired: refresh it (POST /api/user/refresh)",
    "invalid_credentials": "Wrong username, e-mail or password",
    "forbidden": "Signed in, but not allowed to do this",
    "account_disabled": "An operator disabled this account",
    "not_found": "No such resource (or not yours to see)",
    "method_not_allowed": "The path exists, the method does not (see the Allow header)",
    "conflict": "Conflicts with the current state",
    "already_exists": "A user with this username or e-mail address already exists",
    "sales_ended": "The event's sales have ended (it started, or its salesEndAt passed)",
    "sold_out": "No seats left and the waitlist is closed",
    "tier_not_on_sale": "The price tier named is not on sale now (outside its sales window)",
    "offer_ended": "The waitlist offer's time to answer is over (its seats went to the next in line)",
    "idempotency_key_reused": "This Idempotency-Key was already used for a different request",
    "nothing_to_cancel": "No active booking or waitlist place to cancel or withdraw",
    "already_cancelled": "The booking is already cancelled",
    "seats_confirmed": "Not with seats already confirmed (capacity below them, or moving the event into the past)",
    "last_admin": "The last enabled admin can be neither demoted nor disabled",
    "payload_too_large": "The request body is over 64 KiB",
    "unsupported_media_type": "The request body must be JSON",
    "rate_limited": "Too many requests: retry after the Retry-After header",
    "busy": "A dependency is down or busy: retry after the Retry-After header",
    "internal": "An error of ours: the message carries a reference for the operators",
}

# The code of an error that names none of its own: by its HTTP status.
_CODE_BY_STATUS = {
    400: "invalid_input",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "busy",
}


def code_for_status(status: int) -> str:
    return _CODE_BY_STATUS.get(status, "internal" if status >= 500 else "malformed_request")


class AtomicSeatsError(Exception):
    status = 500
    code = "internal"

    def __init__(
        self, message: str, errors: dict | None = None, headers: dict | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}
        self.headers = headers or {}
        if code is not None:
            if code not in ERROR_CODES:
                raise ValueError(f"unknown error code {code!r}: add it to errors.ERROR_CODES")
            self.code = code


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


class HandOffUnknown(ServiceBusy):
    """A hand-off whose outcome is unknown: the broker did not confirm in time, so it may hold
    the request after all (a retry with the same Idempotency-Key must find it again)."""


class RateLimited(AtomicSeatsError):
    """A quota of this user (or address) is used up for the current window."""

    status = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: int, message: str = "Too many requests, slow down") -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after_s))})
