"""OpenAPI 3 generated from the routes and their marshmallow schemas.

Each route of the contract declares what it takes and returns with `@documented(...)`; the
document is built from the URL map, so a route cannot exist without appearing. What every
operation shares is added here once: its operationId (the view's name), the X-Request-ID
header both ways, the error envelope with its machine-readable `code`, Retry-After where a
client is told to come back, the rate-limit headers where limits count, and an example of
each request body and response (api/examples.py).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

from atomicseats.api import examples
from atomicseats.api._io import IDEMPOTENCY_KEY_LENGTH_MAX
from atomicseats.errors import ERROR_CODES, code_for_status
from atomicseats.names import CORRELATION_HEADER, IDEMPOTENCY_HEADER
from atomicseats.observability import CORRELATION_ID_PATTERN

OPENAPI_ATTRIBUTE = "__openapi__"
_PATH_PARAMETER = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_]+)>")
JSON = "application/json"
# Flask-Limiter's headers (RATELIMIT_HEADERS_ENABLED) on the routes it limits by address.
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed in the current window",
    "X-RateLimit-Remaining": "Requests left in the current window",
    "X-RateLimit-Reset": "When the window resets (Unix time, seconds)",
}


@dataclass(frozen=True)
class RouteDoc:
    summary: str
    tag: str
    body: type[Schema] | None
    query: type[Schema] | None
    response: type[Schema] | tuple[type[Schema], ...] | None
    status: int
    also_answers: tuple[int, ...]
    is_authenticated: bool
    errors: tuple[int, ...]
    is_body_required: bool
    takes_idempotency_key: bool
    is_rate_limited: bool
    is_enveloped: bool
    media_type: str


def documented(
    summary: str,
    tag: str,
    *,
    response: type[Schema] | tuple[type[Schema], ...] | None,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    status: int = 200,
    also_answers: tuple[int, ...] = (),
    is_authenticated: bool = True,
    errors: tuple[int, ...] = (),
    is_body_required: bool = True,
    takes_idempotency_key: bool = False,
    is_rate_limited: bool = False,
    is_enveloped: bool = True,
    media_type: str = JSON,
):
    """`response`: the schema of `data` (a tuple: one of them, by the request; None: not JSON,
    see `media_type`); `also_answers`: other statuses answered with that schema; `errors`: the
    statuses the route itself may answer besides those every route of its kind can (400 for a
    body or query, 401 with a token, 413 with a body, 429 when rate limited, 503 always);
    `is_rate_limited`: counted by Flask-Limiter (its X-RateLimit headers, a 429)."""
    doc = RouteDoc(
        summary,
        tag,
        body,
        query,
        response,
        status,
        also_answers,
        is_authenticated,
        errors,
        is_body_required,
        takes_idempotency_key,
        is_rate_limited,
        is_enveloped,
        media_type,
    )

    def decorate(view):
        setattr(view, OPENAPI_ATTRIBUTE, doc)
        return view

    return decorate


def operation_id(endpoint: str) -> str:
    """`api_bookings.book_seats` -> `bookSeats`: the view's name, stable while the view is."""
    first, *rest = endpoint.rsplit(".", 1)[-1].split("_")
    return first + "".join(word.capitalize() for word in rest)


def build_spec(app: Flask) -> dict:
    spec = APISpec(
        title="AtomicSeats API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": _description(app)},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.security_scheme(
        "cookie",
        {
            "type": "apiKey",
            "in": "cookie",
            "name": app.config["JWT_ACCESS_COOKIE_NAME"],
            "description": _cookie_auth(app),
        },
    )
    spec.components.schema("Error", _error_schema())
    for name, description in {CORRELATION_HEADER: _CORRELATION, "Retry-After": _RETRY_AFTER}.items():
        spec.components.header(name, {"description": description, "required": True, "schema": {"type": "string"}})
    for name, description in RATE_LIMIT_HEADERS.items():
        spec.components.header(name, {"description": description, "schema": {"type": "integer"}})
    spec.components.parameter(
        CORRELATION_HEADER,
        "header",
        {
            "name": CORRELATION_HEADER,
            "required": False,
            "description": _CORRELATION + " Anything else is replaced by a fresh id.",
            "schema": {"type": "string", "pattern": CORRELATION_ID_PATTERN.pattern},
        },
    )
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        view = app.view_functions[rule.endpoint]
        doc: RouteDoc | None = getattr(view, OPENAPI_ATTRIBUTE, None)
        if doc is None:
            continue
        path, parameters = _openapi_path(rule.rule)
        operations = {}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations[method.lower()] = _operation(doc, rule.endpoint, view, parameters)
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    _outputs_are_complete(document["components"]["schemas"])
    return document


def _openapi_path(rule: str) -> tuple[str, list[dict]]:
    parameters = []
    for match in _PATH_PARAMETER.finditer(rule):
        schema: dict = {"type": "integer", "minimum": 1} if match.group("converter") == "int" else {"type": "string"}
        parameters.append({"in": "path", "name": match.group("name"), "required": True, "schema": schema})
    return _PATH_PARAMETER.sub(lambda match: "{" + match.group("name") + "}", rule), parameters


def _operation(doc: RouteDoc, endpoint: str, view, path_parameters: list[dict]) -> dict:
    name = operation_id(endpoint)
    example = examples.OPERATIONS[name]
    operation: dict = {"operationId": name, "summary": doc.summary, "tags": [doc.tag]}
    if view.__doc__:
        operation["description"] = inspect.cleandoc(view.__doc__)
    operation["parameters"] = [*path_parameters, CORRELATION_HEADER]  # a name: apispec makes it a $ref
    if doc.query is not None:
        operation["parameters"].append({"in": "query", "schema": doc.query})
    if doc.takes_idempotency_key:
        operation["parameters"].append(_IDEMPOTENCY_KEY)
    if doc.body is not None:
        operation["requestBody"] = {
            "required": doc.is_body_required,
            "content": {JSON: {"schema": doc.body, "example": example.request}},
        }
    if doc.is_authenticated:
        operation["security"] = [{"bearer": []}, {"cookie": []}]
    operation["responses"] = {
        str(status): _success(doc, status, example.response) for status in (doc.status, *doc.also_answers)
    }
    for status in sorted(set(doc.errors) | _default_errors(doc)):
        operation["responses"][str(status)] = _error(status, doc)
    return operation


def _success(doc: RouteDoc, status: int, example) -> dict:
    schema: dict | type[Schema]
    if doc.response is None:
        schema = {"type": "string"}
    elif isinstance(doc.response, tuple):
        # anyOf, not oneOf: the shapes may overlap (an empty history page is a tickets page
        # and a summary page at once, and oneOf refuses what matches both).
        schema = {"anyOf": list(doc.response)}
    else:
        schema = doc.response
    if doc.is_enveloped:
        schema = _envelope(schema, status)
        example = {"statusCode": status, "data": example, "message": doc.summary}
    return {
        "description": doc.summary,
        "headers": _headers(doc, retry_after=False),
        "content": {doc.media_type: {"schema": schema, "example": example}},
    }


def _error(status: int, doc: RouteDoc) -> dict:
    code = code_for_status(status)
    example = {"statusCode": status, "code": code, "message": _ERROR_DESCRIPTIONS[status], "errors": {}}
    if status == 400 and doc.body is not None:
        field = next(field for field in doc.body().fields.values() if not field.dump_only)
        example["errors"] = {field.data_key or field.name: ["Missing data for required field."]}
    return {
        "description": _ERROR_DESCRIPTIONS[status],
        "headers": _headers(doc, retry_after=status in {429, 503}),
        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}, "example": example}},
    }


def _headers(doc: RouteDoc, retry_after: bool) -> dict:
    headers: dict = {CORRELATION_HEADER: CORRELATION_HEADER}  # names: apispec makes them $refs
    if retry_after:
        headers["Retry-After"] = "Retry-After"
    if doc.is_rate_limited:
        headers.update({name: name for name in RATE_LIMIT_HEADERS})
    return headers


def _envelope(data_schema, status: int) -> dict:
    return {
        "type": "object",
        "required": ["statusCode", "data", "message"],
        "additionalProperties": False,
        "properties": {
            "statusCode": {"type": "integer", "enum": [status]},
            "data": data_schema,
            "message": {"type": "string"},
        },
    }


def _default_errors(doc: RouteDoc) -> set[int]:
    errors = {503} if doc.is_enveloped else set()  # a dependency down: retry (the probes answer 503 themselves)
    if doc.body is not None or doc.query is not None or doc.takes_idempotency_key:
        errors.add(400)
    if doc.body is not None:
        errors.add(413)
    if doc.is_authenticated:
        errors.add(401)
    if doc.is_rate_limited:
        errors.add(429)
    return errors


def _outputs_are_complete(components: dict) -> None:
    """Every field of what we answer is always there (null only where it says `nullable`), and
    nothing else is: an `...Out` schema requires all its properties and admits no others, so a
    client (and Schemathesis) can rely on the document."""
    for name, component in components.items():
        if name.endswith("Out"):
            if component.get("properties"):  # OpenAPI 3.0: `required` is never empty
                component["required"] = sorted(component["properties"])
            component["additionalProperties"] = False


def _error_schema() -> dict:
    return {
        "type": "object",
        "required": ["statusCode", "code", "message", "errors"],
        "additionalProperties": False,
        "properties": {
            "statusCode": {"type": "integer"},
            "code": {
                "type": "string",
                "enum": list(ERROR_CODES),
                "description": "Stable and machine-readable: branch on it, not on the message. "
                + "; ".join(f"`{code}`: {meaning}" for code, meaning in ERROR_CODES.items()),
            },
            "message": {"type": "string", "description": "For people; may change"},
            "errors": {
                "type": "object",
                "description": "Field (or header) name -> what is wrong with it; empty when no field is to blame",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
    }


def _cookie_auth(app: Flask) -> str:
    header, cookie = app.config["JWT_ACCESS_CSRF_HEADER_NAME"], app.config["JWT_ACCESS_CSRF_COOKIE_NAME"]
    return (
        "The access token as the cookie that log in and refresh set (for browsers). Every POST, PUT, "
        f"PATCH and DELETE authenticated by this cookie must also send the header `{header}` with the "
        f"value of the `{cookie}` cookie set beside it (double-submit CSRF protection); without it, "
        "401. Bearer tokens need no CSRF header."
    )


def _description(app: Flask) -> str:
    return (
        "Ticket booking that never sells a seat twice.\n\n"
        "**Envelope.** A success is `{statusCode, data, message}`; an error is "
        "`{statusCode, code, message, errors}`, where `code` is stable and machine-readable "
        "(see the Error schema) and `errors` names each invalid field.\n\n"
        "**Authentication.** `Authorization: Bearer <accessToken>` from log in or refresh; or, "
        "in a browser, the access token cookie plus its CSRF header on writes (see the `cookie` "
        "security scheme).\n\n"
        f"**{IDEMPOTENCY_HEADER}.** `POST /api/events/book` takes an optional key: a retry with "
        "the same key and body answers the first request again instead of booking twice.\n\n"
        f"**{CORRELATION_HEADER}.** Send one to trace a request through the pipeline, its "
        "logs and its e-mails; every response carries it (yours, or a fresh one).\n\n"
        "**Retry-After.** On 429 (rate limited) and 503 (a dependency is down or busy): the "
        "seconds to wait before trying again.\n\n"
        "**Rate limits.** Registration and log in are limited per address (the X-RateLimit-* "
        "headers tell the window); booking is limited per account (a 429 with Retry-After).\n\n"
        "**Cross-origin (CORS).** Off unless the operator lists web origins in "
        "`CORS_ALLOWED_ORIGINS`; then `/api` answers those origins without credentials "
        "(authenticate with `Authorization: Bearer`, never cookies), preflights may send "
        "`Authorization`, `Content-Type`, `Idempotency-Key` and `X-Request-ID`, and responses expose "
        "`X-Request-ID`, `Retry-After` and `X-RateLimit-Limit/Remaining/Reset`."
    )


_CORRELATION = "The request's id, for support and tracing: letters, digits and `._:-`, at most 64."
_RETRY_AFTER = "Seconds to wait before retrying"
_IDEMPOTENCY_KEY = {
    "in": "header",
    "name": IDEMPOTENCY_HEADER,
    "required": False,
    "description": "Makes the request safe to retry: within 24 h the same key with the same body answers "
    "the first request's id and status again; with a different body, 409 (idempotency_key_reused). After "
    "24 h a reused key still names the first request while it is kept (no second booking). A UUID is a good key.",
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_LENGTH_MAX},
}
_ERROR_DESCRIPTIONS = {
    400: "Invalid input; `errors` names the fields",
    401: "Missing, invalid, expired or revoked token",
    403: "Not allowed for this user",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Request body too large (64 KiB at most)",
    429: "Rate limited: retry after the Retry-After header",
    503: "A dependency is down or busy: retry after the Retry-After header",
}
