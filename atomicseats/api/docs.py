"""The OpenAPI document and a browsable docs page (Swagger UI served from our own package)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template_string, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from atomicseats.api.openapi import build_spec

bp = Blueprint("api_docs", __name__, url_prefix="/api")

_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>AtomicSeats API</title>
<link rel="stylesheet" href="{{ url_for('api_docs.swagger_asset', filename='swagger-ui.css') }}"></head>
<body><div id="swagger-ui"></div>
<script src="{{ url_for('api_docs.swagger_asset', filename='swagger-ui-bundle.js') }}"></script>
<script>
window.ui = SwaggerUIBundle({url: "{{ url_for('api_docs.openapi_document') }}", dom_id: "#swagger-ui"});
</script>
</body></html>"""


@bp.get("/openapi.json")
def openapi_document():
    spec = current_app.extensions.get("atomicseats.openapi")
    if spec is None:
        spec = current_app.extensions["atomicseats.openapi"] = build_spec(current_app)
    return jsonify(spec)


@bp.get("/docs")
def docs_page():
    return render_template_string(_DOCS_PAGE)


@bp.get("/docs/assets/<path:filename>")
def swagger_asset(filename: str):
    return send_from_directory(swagger_ui_path, filename, max_age=3600)
