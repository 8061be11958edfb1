"""Reading requests at the edge: JSON bodies and query strings through a schema."""

from __future__ import annotations

import functools
import json
from typing import TypeVar

from flask import request
from marshmallow import Schema
from werkzeug.exceptions import RequestEntityTooLarge

from atomicseats.errors import InvalidInput
from atomicseats.names import IDEMPOTENCY_HEADER
from atomicseats.observability import get_correlation_id

IDEMPOTENCY_KEY_LENGTH_MAX = 255

SchemaT = TypeVar("SchemaT", bound=Schema)


@functools.cache
def schema(schema_class: type[SchemaT]) -> SchemaT:
    """The one instance of a schema class that every request uses. Marshmallow builds an
    instance's fields (deep copies of the declared ones, nested schemas included) when it is
    made: 0.1-0.5 ms a schema, on every request that made its own. Ours keep no state
    between loads and dumps (no context), so one instance serves every thread."""
    return schema_class()


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _LoneSurrogate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key.encode("utf-8", "backslashreplace").decode("utf-8")  # printable, for the 400


def _checked_object(pairs: list[tuple[str, object]]) -> dict:
    """Each JSON object of a body, inner ones first. `{"numberOfSeats": 1, "numberOfSeats": 9}`
    means different things to different parsers (first or last wins): refuse it rather than
    guess. A key or string that escapes half of a UTF-16 pair alone ("\\ud800") is no Unicode
    text: Python reads it, but no database, password hash or e-mail can encode it, so it is
    refused here, before any of them sees it."""
    payload = dict(pairs)
    if len(payload) != len(pairs):
        seen = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    for key, value in pairs:
        if _holds_lone_surrogate(key) or _holds_lone_surrogate(value):
            raise _LoneSurrogate(key)
    return payload


def _holds_lone_surrogate(value: object) -> bool:
    """A string (or a string in a list, at any depth; objects are checked on their own) that
    UTF-8 cannot encode. Bounded by the body: each value is looked at once."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, list):
            pending.extend(item)
    return False


# Built once: json.loads builds a decoder per call when given a hook.
_DECODER = json.JSONDecoder(object_pairs_hook=_checked_object)


def load_body(schema: Schema) -> dict:
    """Parse the JSON body strictly: not JSON, not an object, a key given twice, text that is
    not Unicode, or wrong types → 400; past the body limit → 413."""
    if not request.is_json:
        raise InvalidInput("Request body must be JSON (Content-Type: application/json)")
    try:
        payload = _decode_json(request_body())
    except _DuplicateKey as error:
        raise InvalidInput("A key is given twice in a JSON object", {error.key: ["Given more than once."]}) from error
    except _LoneSurrogate as error:
        raise InvalidInput(
            "Request body is not valid Unicode text",
            {error.key: ["Must be Unicode text: a lone surrogate escape (\\ud800-\\udfff) is no character."]},
        ) from error
    except (ValueError, RecursionError) as error:  # RecursionError: absurdly deep nesting
        raise InvalidInput("Request body is not valid JSON") from error
    # marshmallow's hints say a mapping; at run time it refuses any other shape itself (a 400).
    return schema.load(payload)  # type: ignore[arg-type]


def _decode_json(data: bytes) -> object:
    """json.loads(data, object_pairs_hook=_refuse_duplicate_keys), step for step (bytes: the
    encoding detected, UTF-8/16/32, a BOM skipped; bad bytes are a ValueError), with the
    decoder built once."""
    return _DECODER.decode(data.decode(json.detect_encoding(data), "surrogatepass"))


def load_optional_body(schema: Schema) -> dict:
    if not request_body():
        return schema.load({})
    return load_body(schema)


def request_body() -> bytes:
    """The body, at most MAX_CONTENT_LENGTH bytes, or 413.

    With a Content-Length, Werkzeug refuses a body over the limit up front. A streamed
    (chunked) body has none: Werkzeug reads it up to the limit and silently stops there,
    so a body padded past the limit would be read as its first 64 KiB. When the limit is
    reached, one more byte of the server's stream tells a body that is exactly the limit
    from one that is longer."""
    data = request.get_data(cache=True)
    if request.content_length is not None:  # Werkzeug held the body to its length and the limit
        return data
    limit = request.max_content_length
    if limit is not None and len(data) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return data


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
