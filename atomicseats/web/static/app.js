// AtomicSeats pages: the little behaviour htmx does not give. No inline scripts (CSP).
// A form marked data-submit-once sends one request however often its button is pressed
// (its Idempotency-Key makes a second one harmless anyway; this keeps it from being sent).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.matches("form[data-submit-once]")) return;
  if (form.dataset.submitted === "yes") {
    event.preventDefault();
    return;
  }
  form.dataset.submitted = "yes";
  form.querySelectorAll("button[type=submit]").forEach(function (button) {
    button.setAttribute("aria-disabled", "true");
    button.classList.add("is-busy");
  });
});
// Back/forward cache: a page restored from it may show a form already submitted.
window.addEventListener("pageshow", function () {
  document.querySelectorAll("form[data-submitted]").forEach(function (form) {
    delete form.dataset.submitted;
    form.querySelectorAll("button.is-busy").forEach(function (button) {
      button.removeAttribute("aria-disabled");
      button.classList.remove("is-busy");
    });
  });
});
// A new event's time zone starts as the browser's own (when the list has it); the host can change it.
document.addEventListener("DOMContentLoaded", function () {
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  document.querySelectorAll("select[data-browser-zone]").forEach(function (select) {
    if (zone && select.querySelector('option[value="' + zone.replace(/"/g, "") + '"]')) select.value = zone;
  });
});
// Check-in: where the browser has a BarcodeDetector, the camera can read a ticket's QR code and
// submit it as if typed; elsewhere the button stays hidden and typing or a scanner works as ever.
document.addEventListener("DOMContentLoaded", function () {
  var button = document.querySelector("[data-camera-scan]");
  var video = document.querySelector("[data-camera-preview]");
  if (!button || !video || !("BarcodeDetector" in window) || !navigator.mediaDevices) return;
  var form = button.form;
  var input = form.querySelector("input[name=code]");
  button.hidden = false;
  button.addEventListener("click", function () {
    var detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } }).then(function (stream) {
      video.srcObject = stream;
      video.hidden = false;
      video.play();
      var look = function () {
        detector.detect(video).then(function (codes) {
          if (codes.length) {
            stream.getTracks().forEach(function (track) { track.stop(); });
            input.value = codes[0].rawValue;
            form.submit();
          } else {
            window.requestAnimationFrame(look);
          }
        }).catch(function () { window.requestAnimationFrame(look); });
      };
      look();
    }).catch(function () { button.hidden = true; });
  });
});
