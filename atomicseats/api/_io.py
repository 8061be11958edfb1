"""Reading requests at the edge: JSON bodies and query strings through a schema."""

from __future__ import annotations

import json

from flask import request
from marshmallow import Schema

from atomicseats.errors import InvalidInput
from atomicseats.observability import get_correlation_id

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_LENGTH_MAX = 255


def load_body(schema: Schema) -> dict:
    """Parse the JSON body strictly: not JSON, not an object, or wrong types → 400."""
    if not request.is_json:
        raise InvalidInput("Request body must be JSON (Content-Type: application/json)")
    try:
        payload = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly deep nesting
        raise InvalidInput("Request body is not valid JSON") from error
    return schema.load(payload)


def load_optional_body(schema: Schema) -> dict:
    if not request.get_data(cache=True):
        return schema.load({})
    return load_body(schema)


def load_query(schema: Schema) -> dict:
    return schema.load(request.args.to_dict(flat=True))


def idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    key = key.strip()
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_LENGTH_MAX or not key.isprintable():
        raise InvalidInput(
            "Invalid Idempotency-Key header",
            {IDEMPOTENCY_HEADER: [f"1 to {IDEMPOTENCY_KEY_LENGTH_MAX} printable characters."]},
        )
    return key


def correlation_id() -> str | None:
    return get_correlation_id()
