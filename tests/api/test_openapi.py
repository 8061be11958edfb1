"""The generated OpenAPI document and the Swagger UI page that shows it.

The document is valid OpenAPI 3.0 (openapi-spec-validator); beyond that, what a client relies
on is checked here: every /api route and probe with its methods, request bodies, path
parameters, responses, operationIds, examples that match their schemas, the headers
(X-Request-ID, Idempotency-Key, Retry-After, the rate-limit headers, the CSRF header of cookie
auth) and the error `code`s. That real responses match it: tests/api/test_contract.py, and
Schemathesis against a live server.
"""

from __future__ import annotations

import re

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from atomicseats.errors import ERROR_CODES
from tests.api.support import assert_error
from tests.helpers import unchanged

UNDOCUMENTED = {"/api/openapi.json", "/api/docs", "/api/docs/assets/<path:filename>"}
PROBES = {"/healthz", "/readyz", "/metrics"}  # documented too, outside /api
# The JSON endpoints that read a request body (method, OpenAPI path).
TAKES_A_BODY = {
    ("post", "/api/user/register"),
    ("post", "/api/user/login"),
    ("post", "/api/user/refresh"),
    ("post", "/api/events/create"),
    ("post", "/api/events/update"),
    ("post", "/api/events/delete"),
    ("post", "/api/events/book"),
    ("delete", "/api/events/book"),
    ("patch", "/api/admin/users/{user_id}"),
    ("post", "/api/events/{event_id}/check-ins"),
    ("post", "/api/bookings/requests/{request_id}/offer"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PARAMETER = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([A-Za-z_]+)>")  # converter, optional arguments, name


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def api_routes(app) -> dict[str, set[str]]:
    """OpenAPI path -> methods, for every /api rule and probe the app serves."""
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api") or rule.rule in PROBES) or rule.rule in UNDOCUMENTED:
            continue
        path = _PARAMETER.sub(r"{\1}", rule.rule)
        methods = {method.lower() for method in rule.methods - {"HEAD", "OPTIONS"}}
        routes.setdefault(path, set()).update(methods)
    return routes


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_document_is_openapi_3_0_3_with_info(spec):
    assert spec["openapi"] == "3.0.3"
    assert spec["info"]["title"]
    assert spec["info"]["version"]
    assert isinstance(spec["paths"], dict) and spec["paths"]


def test_every_api_route_is_documented_with_its_methods(app, spec):
    routes = api_routes(app)

    documented = {path: {method for method in item if method in HTTP_METHODS} for path, item in spec["paths"].items()}

    assert documented == routes


def test_the_seed_endpoints_are_all_there(spec):
    expected = {
        ("post", "/api/user/register"),
        ("post", "/api/user/login"),
        ("post", "/api/user/logout"),
        ("get", "/api/user/bookings"),
        ("get", "/api/events/all"),
        ("post", "/api/events/create"),
        ("post", "/api/events/update"),
        ("post", "/api/events/delete"),
        ("post", "/api/events/book"),
        ("delete", "/api/events/book"),
        ("get", "/api/admin/analytics"),
    }

    assert expected <= {(method, path) for path, method, _operation in operations(spec)}


def test_every_endpoint_that_reads_a_body_documents_a_json_request_body(spec):
    for path, method, operation in operations(spec):
        if (method, path) in TAKES_A_BODY:
            body = operation.get("requestBody")
            assert body is not None, f"{method.upper()} {path} has no requestBody"
            assert "schema" in body["content"]["application/json"], f"{method.upper()} {path}"
        else:
            assert "requestBody" not in operation, f"{method.upper()} {path} takes no body"


def test_refresh_body_is_documented_as_optional(spec):
    """The refresh token usually comes as a Bearer header or cookie; the body is optional
    (api/users.py uses load_optional_body) but the document marks it required."""
    body = spec["paths"]["/api/user/refresh"]["post"]["requestBody"]

    assert body.get("required", False) is False


def test_path_parameters_are_declared(spec):
    for path, method, operation in operations(spec):
        declared = {parameter["name"] for parameter in operation.get("parameters", []) if parameter.get("in") == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", path)), f"{method.upper()} {path}"


def test_every_operation_documents_a_success_response_and_its_401(spec):
    for path, method, operation in operations(spec):
        statuses = set(operation["responses"])
        assert any(status.startswith("2") for status in statuses), f"{method.upper()} {path}"
        if operation.get("security"):
            assert "401" in statuses, f"{method.upper()} {path}"


@pytest.mark.parametrize("path", ["/api/user/login", "/api/user/refresh"])
def test_token_endpoints_document_their_401(spec, path):
    """Wrong credentials (login) and a dead refresh token (refresh) answer 401, but
    openapi._default_errors only adds 401 to operations that carry `security`."""
    assert "401" in spec["paths"][path]["post"]["responses"]


def test_public_endpoints_need_no_token(spec):
    public = {
        ("get", "/api/events/all"),
        ("get", "/api/events/{event_id}"),
        ("post", "/api/user/register"),
        ("post", "/api/user/login"),
        *(("get", probe) for probe in PROBES),
    }

    for path, method, operation in operations(spec):
        if (method, path) in public:
            assert not operation.get("security"), f"{method.upper()} {path}"
        elif path != "/api/user/refresh":
            assert operation.get("security"), f"{method.upper()} {path} should declare its token"


def test_every_ref_resolves(spec):
    security_schemes = spec["components"]["securitySchemes"]

    for ref in set(refs(spec)):
        kind, _, name = ref.removeprefix("#/components/").partition("/")
        assert ref.startswith("#/components/") and kind in {"schemas", "headers", "parameters"}, ref
        assert name in spec["components"][kind], ref
    for _path, _method, operation in operations(spec):
        for requirement in operation.get("security", []):
            assert set(requirement) <= set(security_schemes)


def test_error_schema_is_the_envelope(spec):
    error = spec["components"]["schemas"]["Error"]

    assert set(error["properties"]) == {"statusCode", "code", "message", "errors"}
    assert set(error["required"]) == set(error["properties"])
    assert error["properties"]["code"]["enum"] == list(ERROR_CODES)


def test_book_request_body_names_the_seed_fields(spec):
    body = spec["paths"]["/api/events/book"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]

    assert {"eventId", "numberOfSeats"} <= set(schema["properties"])
    assert set(schema["required"]) == {"eventId", "numberOfSeats"}


def test_document_is_stable_between_requests(client):
    assert client.get("/api/openapi.json").get_json() == client.get("/api/openapi.json").get_json()


def test_docs_page_is_html_that_loads_swagger_and_the_document(client):
    response = client.get("/api/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "swagger-ui-bundle.js" in html
    assert "swagger-ui.css" in html
    assert "/api/openapi.json" in html


def test_every_swagger_asset_the_page_references_is_served(client):
    html = client.get("/api/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="(/api/docs/assets/[^"]+)"', html)

    assert len(assets) >= 2
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert response.content_length or response.get_data()


def test_asset_path_cannot_escape_the_swagger_directory(client):
    with unchanged():
        response = client.get("/api/docs/assets/../../../../etc/passwd")

    assert response.status_code == 404
    assert b"root:" not in response.get_data()


def test_unknown_asset_answers_in_the_error_envelope(client):
    with unchanged():
        assert_error(client.get("/api/docs/assets/missing.css"), 404)


# --- the complete contract ---------------------------------------------------------------


def test_document_is_valid_openapi_3_0(spec):
    validate(spec)  # raises OpenAPIValidationError naming the first fault


def test_every_operation_has_a_unique_operation_id_and_a_summary(spec):
    ids = [operation.get("operationId") for _path, _method, operation in operations(spec)]

    assert all(ids), ids
    assert len(set(ids)) == len(ids), ids
    for path, method, operation in operations(spec):
        assert operation.get("summary"), f"{method.upper()} {path}"


def test_every_request_body_and_response_has_an_example_that_matches_its_schema(spec):
    for path, method, operation in operations(spec):
        media = [("request", operation["requestBody"]["content"])] if "requestBody" in operation else []
        media += [(status, response["content"]) for status, response in operation["responses"].items()]
        for what, content in media:
            for media_type, body in content.items():
                where = f"{method.upper()} {path} {what} {media_type}"
                assert "example" in body, where
                assert_matches(spec, body["schema"], body["example"], where)


def test_every_response_carries_x_request_id_and_every_retry_carries_retry_after(spec):
    headers = spec["components"]["headers"]
    assert headers["X-Request-ID"]["required"] is True
    assert headers["Retry-After"]["required"] is True
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            where = f"{method.upper()} {path} {status}"
            assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/X-Request-ID"}, where
            if status in {"429", "503"} and path != "/readyz":
                assert response["headers"]["Retry-After"] == {"$ref": "#/components/headers/Retry-After"}, where


def test_every_operation_takes_an_x_request_id_and_the_booking_an_idempotency_key(spec):
    pattern = spec["components"]["parameters"]["X-Request-ID"]["schema"]["pattern"]
    assert re.match(pattern, "checkout-42:retry.1") and not re.match(pattern, "a b")
    for path, method, operation in operations(spec):
        assert {"$ref": "#/components/parameters/X-Request-ID"} in operation["parameters"], f"{method} {path}"
        headers = {parameter.get("name") for parameter in operation["parameters"] if parameter.get("in") == "header"}
        assert ("Idempotency-Key" in headers) == ((method, path) == ("post", "/api/events/book")), f"{method} {path}"


@pytest.mark.parametrize("path", ["/api/user/register", "/api/user/login"])
def test_address_rate_limited_routes_document_their_headers_and_429(spec, path):
    responses = spec["paths"][path]["post"]["responses"]

    assert "429" in responses
    for status in ("200" if path.endswith("login") else "201", "429"):
        assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(responses[status]["headers"])


def test_the_booking_documents_its_quota_and_every_route_a_dependency_down(spec):
    assert "429" in spec["paths"]["/api/events/book"]["post"]["responses"]
    for path, method, operation in operations(spec):
        if path not in PROBES:
            assert "503" in operation["responses"], f"{method.upper()} {path}"


def test_cookie_auth_documents_its_csrf_header(app, spec):
    cookie = spec["components"]["securitySchemes"]["cookie"]

    assert cookie["name"] == app.config["JWT_ACCESS_COOKIE_NAME"]
    assert app.config["JWT_ACCESS_CSRF_HEADER_NAME"] in cookie["description"]
    assert app.config["JWT_ACCESS_CSRF_COOKIE_NAME"] in cookie["description"]


def test_what_we_answer_is_complete_every_field_required_and_no_other(spec):
    """An `...Out` schema lists every field the API dumps, and only those."""
    for name, schema in spec["components"]["schemas"].items():
        if name.endswith("Out"):
            assert schema["additionalProperties"] is False, name
            assert set(schema.get("required", [])) == set(schema.get("properties", {})), name


def test_the_examples_check_catches_a_wrong_example(spec):
    """Negative control for the example check above: a field of the wrong type fails it."""
    schema = spec["paths"]["/api/events/{event_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    wrong = {**schema["example"], "data": {**schema["example"]["data"], "seatsLeft": "two"}}

    with pytest.raises(AssertionError, match="seatsLeft"):
        assert_matches(spec, schema["schema"], wrong, "wrong")


def assert_matches(spec: dict, schema: dict, instance, where: str) -> None:
    errors = list(OAS30Validator({**schema, "components": spec["components"]}).iter_errors(instance))
    assert not errors, f"{where}: " + "; ".join(f"{list(error.path)}: {error.message}" for error in errors[:3])
