"""The chart plumbing in a real browser: the `chart(...)` macro (templates/web/_charts.html) renders
a canvas, a JSON data block and a table; static/charts.js draws the canvas with the vendored
Chart.js under the pages' Content-Security-Policy (no inline script or style); without
JavaScript the table is what shows.

The page under test is the macro rendered by the app and served at the live server's origin
(through Playwright's routing, with the blueprint's security headers), loading the real assets
from the live server: the pages that use charts have their own tests."""

from __future__ import annotations

from flask import render_template_string
from playwright.sync_api import Page, expect

from atomicseats.web import SECURITY_HEADERS
from tests.browser.conftest import NON_BLANK_PIXELS, PAINTED_PIXELS_MIN, check_page

CHART_PAGE = """{% extends "web/base.html" %}
{% from "web/_charts.html" import chart, chart_scripts %}
{% block title %}Chart{% endblock %}
{% block head %}{{ chart_scripts() }}{% endblock %}
{% block content %}
<h1>Chart test</h1>
{{ chart("sales", "Seats booked per day", labels=labels, series=series, summary="16 seats over 4 days",
         x_label="Day", y_label="Seats") }}
{{ chart("nothing", "Nothing yet", labels=[], series=[]) }}
{% endblock %}"""

LABELS = ["1 Dec", "2 Dec", "3 Dec", "4 Dec"]
SERIES = [
    {"label": "Seats booked", "data": [2, 5, 1, 8]},
    {"label": "Revenue", "data": [50, 125, 25, 200], "display": ["€0.50", "€1.25", "€0.25", "€2.00"]},
]


def serve_chart_page(page: Page, live_server) -> str:
    with live_server.app.test_request_context():
        html = render_template_string(CHART_PAGE, labels=LABELS, series=SERIES)
    page.route(
        "**/chart-test",
        lambda route: route.fulfill(
            status=200, body=html, headers={**SECURITY_HEADERS, "Content-Type": "text/html; charset=utf-8"}
        ),
    )
    return "/chart-test"


def test_a_chart_draws_under_the_csp_and_keeps_its_table_for_screen_readers(new_page, live_server):
    page = new_page()
    page.emulate_media(reduced_motion="reduce")  # drawn at once, no animation
    page.goto(serve_chart_page(page, live_server))

    figure = page.locator("#sales")
    expect(figure).to_have_class("chart is-drawn")
    canvas = figure.locator("canvas")
    expect(canvas).to_have_attribute("role", "img")
    expect(canvas).to_have_attribute("aria-label", "Seats booked per day: 16 seats over 4 days")
    assert canvas.evaluate(NON_BLANK_PIXELS) > PAINTED_PIXELS_MIN
    assert page.evaluate("() => Chart.getChart(document.querySelector('#sales canvas')).options.animation") is False

    # The table is still there for screen readers (visually hidden), and the button shows it.
    table = figure.get_by_role("table", name="Seats booked per day")
    expect(table.get_by_role("row")).to_have_count(5)
    expect(table.get_by_role("cell", name="€1.25")).to_be_attached()
    region = figure.locator(".chart-table")
    assert region.bounding_box()["width"] <= 1
    toggle = figure.get_by_role("button", name="Show the numbers")
    toggle.click()
    expect(figure.get_by_role("button", name="Hide the numbers")).to_have_attribute("aria-expanded", "true")
    assert region.bounding_box()["width"] > 100
    expect(page.locator("#nothing")).to_contain_text("Nothing to show yet.")
    check_page(page, "chart-macro")


def test_without_javascript_the_chart_is_its_table(new_page, live_server):
    page = new_page(javascript=False)
    page.goto(serve_chart_page(page, live_server))
    figure = page.locator("#sales")
    expect(figure.locator("canvas")).to_be_hidden()
    table = figure.get_by_role("table", name="Seats booked per day")
    expect(table).to_be_visible()
    expect(table.get_by_role("row", name="4 Dec")).to_contain_text("8")
    expect(figure.get_by_role("button", name="Show the numbers")).to_be_hidden()
