// AtomicSeats charts: draws every <canvas data-chart="ID"> with Chart.js (static/vendor) from the
// JSON in <script type="application/json" id="ID"> (no inline script: the page's CSP allows none).
// The macro in templates/web/_charts.html writes both, plus a table of the same numbers: without
// JavaScript the table is what shows; once drawn, the table stays for screen readers and a button
// shows it to everyone. Motion is off when the visitor prefers reduced motion.
(function () {
  "use strict";
  var FALLBACK_COLOURS = ["#3b2bd6", "#c2410c", "#0f766e", "#9d174d"];

  function cssColour(index) {
    var value = getComputedStyle(document.documentElement).getPropertyValue("--chart-" + (index + 1)).trim();
    return value || FALLBACK_COLOURS[index % FALLBACK_COLOURS.length];
  }

  function reducedMotion() {
    return window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  function config(spec) {
    var kind = spec.type === "bar" ? "bar" : "line";
    var ink = getComputedStyle(document.body).color;
    var datasets = (spec.series || []).map(function (series, index) {
      var colour = cssColour(index);
      return {
        label: series.label,
        data: series.data,
        borderColor: colour,
        backgroundColor: kind === "bar" ? colour : colour + "22",
        fill: kind === "line" && spec.series.length === 1,
        cubicInterpolationMode: "monotone", // smooth, never overshooting below zero between points
        pointRadius: series.data.length > 40 ? 0 : 3,
        stepped: series.stepped ? "before" : false,
        maxBarThickness: 56,
      };
    });
    var axisTitle = function (text) {
      return { display: Boolean(text), text: text || "", color: ink };
    };
    return {
      type: kind,
      data: { labels: spec.labels || [], datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reducedMotion() ? false : { duration: 400 },
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: datasets.length > 1, labels: { color: ink } },
          tooltip: { enabled: true },
        },
        scales: {
          x: {
            stacked: Boolean(spec.stacked),
            offset: kind === "bar" || (spec.labels || []).length < 3, // a lone day's points sit mid-chart, not on the axis
            title: axisTitle(spec.x),
            ticks: { color: ink, maxRotation: 0, autoSkip: true },
          },
          y: {
            stacked: Boolean(spec.stacked),
            beginAtZero: true,
            max: typeof spec.yMax === "number" ? spec.yMax : undefined,
            title: axisTitle(spec.y),
            ticks: { color: ink, precision: spec.precision === undefined ? 0 : spec.precision },
          },
        },
      },
    };
  }

  function draw(canvas) {
    if (typeof window.Chart === "undefined" || window.Chart.getChart(canvas)) return;
    var source = document.getElementById(canvas.dataset.chart);
    if (!source) return;
    var spec;
    try {
      spec = JSON.parse(source.textContent);
    } catch (error) {
      return; // the table still tells the numbers
    }
    new window.Chart(canvas, config(spec));
    var figure = canvas.closest(".chart");
    if (figure) figure.classList.add("is-drawn");
    var toggle = figure && figure.querySelector("[data-chart-toggle]");
    if (toggle) toggle.hidden = false;
    var table = figure && figure.querySelector(".chart-table");
    if (table) table.removeAttribute("tabindex"); // hidden from sight: not a stop for the keyboard
  }

  function drawAll(root) {
    // Charts whose canvas left the page (an htmx swap) let go of it first.
    Object.values(window.Chart ? window.Chart.instances : {}).forEach(function (chart) {
      if (!chart.canvas || !chart.canvas.isConnected) chart.destroy();
    });
    (root || document).querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest("[data-chart-toggle]");
    if (!toggle) return;
    var figure = toggle.closest(".chart");
    var showing = figure.classList.toggle("show-table");
    toggle.setAttribute("aria-expanded", showing ? "true" : "false");
    toggle.textContent = showing ? toggle.dataset.hideText : toggle.dataset.showText;
    var table = figure.querySelector(".chart-table");
    if (table && showing) table.setAttribute("tabindex", "0"); // a scrolling region the keyboard can scroll
    else if (table) table.removeAttribute("tabindex");
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  } else {
    drawAll(document);
  }
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); });
})();
