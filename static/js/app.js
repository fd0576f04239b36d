// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="text">
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button || !navigator.clipboard) return;
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      var done = button.getAttribute("data-copied-label");
      if (done) button.textContent = done;
    });
  });

  // Non-htmx forms that ask for confirmation: <form data-confirm="…">
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !form.hasAttribute("hx-confirm") && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Polling elements (<… data-poll-visible>) stay quiet while the tab is hidden. This replaces an
  // hx-trigger filter, which htmx would have to eval and the Content-Security-Policy forbids.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail && event.detail.elt;
    if (elt && elt.hasAttribute && elt.hasAttribute("data-poll-visible") && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });

  // After htmx swaps in a form with errors, move focus to the first invalid field.
  document.addEventListener("htmx:afterSwap", function (event) {
    var invalid = event.detail.target.querySelector("[aria-invalid='true']");
    if (invalid) invalid.focus();
  });
})();
