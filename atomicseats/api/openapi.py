"""OpenAPI 3 generated from the routes and their marshmallow schemas.

Each JSON route declares what it takes and returns with `@documented(...)`; the
document is built from the URL map, so a route cannot exist without appearing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from marshmallow import Schema

OPENAPI_ATTRIBUTE = "__openapi__"
_PATH_PARAMETER = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_]+)>")


@dataclass(frozen=True)
class RouteDoc:
    summary: str
    tag: str
    body: type[Schema] | None
    query: type[Schema] | None
    response: type[Schema] | None
    status: int
    is_authenticated: bool
    response_is_list: bool
    errors: tuple[int, ...]
    is_body_required: bool


def documented(
    summary: str,
    tag: str,
    *,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    response: type[Schema] | None = None,
    status: int = 200,
    is_authenticated: bool = True,
    response_is_list: bool = False,
    errors: tuple[int, ...] = (),
    is_body_required: bool = True,
):
    doc = RouteDoc(
        summary, tag, body, query, response, status, is_authenticated, response_is_list, errors, is_body_required
    )

    def decorate(view):
        setattr(view, OPENAPI_ATTRIBUTE, doc)
        return view

    return decorate


def build_spec(app: Flask) -> dict:
    spec = APISpec(
        title="AtomicSeats API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Ticket booking that never sells a seat twice. Envelope: {statusCode, data, message}."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.security_scheme("cookie", {"type": "apiKey", "in": "cookie", "name": "accessToken"})
    spec.components.schema("Error", ERROR_SCHEMA)
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        view = app.view_functions[rule.endpoint]
        doc: RouteDoc | None = getattr(view, OPENAPI_ATTRIBUTE, None)
        if doc is None or not rule.rule.startswith("/api"):
            continue
        path, parameters = _openapi_path(rule.rule)
        operations = {}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations[method.lower()] = _operation(doc, parameters, method)
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _openapi_path(rule: str) -> tuple[str, list[dict]]:
    parameters = []
    for match in _PATH_PARAMETER.finditer(rule):
        schema_type = "integer" if match.group("converter") == "int" else "string"
        parameters.append(
            {"in": "path", "name": match.group("name"), "required": True, "schema": {"type": schema_type}}
        )
    return _PATH_PARAMETER.sub(lambda match: "{" + match.group("name") + "}", rule), parameters


def _operation(doc: RouteDoc, path_parameters: list[dict], method: str) -> dict:
    operation: dict = {"summary": doc.summary, "tags": [doc.tag], "parameters": list(path_parameters)}
    if doc.query is not None:
        operation["parameters"].append({"in": "query", "schema": doc.query})
    if doc.body is not None:
        operation["requestBody"] = {
            "required": doc.is_body_required,
            "content": {"application/json": {"schema": doc.body}},
        }
    if doc.is_authenticated:
        operation["security"] = [{"bearer": []}, {"cookie": []}]
    data_schema: dict | type[Schema] = {"type": "object"}
    if doc.response is not None:
        data_schema = {"type": "array", "items": doc.response} if doc.response_is_list else doc.response
    operation["responses"] = {
        str(doc.status): {
            "description": doc.summary,
            "content": {"application/json": {"schema": _envelope(data_schema)}},
        }
    }
    for status in sorted(set(doc.errors) | _default_errors(doc, method)):
        operation["responses"][str(status)] = {
            "description": _ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return operation


def _envelope(data_schema) -> dict:
    return {
        "type": "object",
        "properties": {"statusCode": {"type": "integer"}, "data": data_schema, "message": {"type": "string"}},
    }


def _default_errors(doc: RouteDoc, method: str) -> set[int]:
    errors = {400} if (doc.body is not None or doc.query is not None) else set()
    if doc.is_authenticated:
        errors.add(401)
    return errors


_ERROR_DESCRIPTIONS = {
    400: "Invalid input; `errors` names the fields",
    401: "Missing, invalid, expired or revoked token",
    403: "Not allowed for this user",
    404: "Not found",
    409: "Conflicts with the current state",
    429: "Rate limited",
    503: "Busy; retry after the Retry-After header",
}

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "statusCode": {"type": "integer"},
        "message": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
}
