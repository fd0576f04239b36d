// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="text" data-copy-field="id" data-copy-status="id">. Without
  // the clipboard API (plain-http intranet, old browsers) or when it refuses, the field's text is
  // selected and the status says to copy it by hand, instead of nothing happening.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy-field") || "");
    var status = document.getElementById(button.getAttribute("data-copy-status") || "");
    function say(text) {
      if (status && text) status.textContent = text;
    }
    function byHand() {
      if (field) {
        field.focus();
        field.select();
      }
      say(button.getAttribute("data-copy-failed"));
    }
    if (!navigator.clipboard || !navigator.clipboard.writeText) {
      byHand();
      return;
    }
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      say(button.getAttribute("data-copied-label"));
    }, byHand);
  });

  // Read-only fields meant for copying (<input data-select-on-focus>): select all their text.
  function selectAll(event) {
    var field = event.target;
    if (field && field.matches && field.matches("input[data-select-on-focus]")) field.select();
  }
  document.addEventListener("focusin", selectAll);
  document.addEventListener("click", selectAll);

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

  // The phone header's 导航 menu (<details class="nav-menu">, works without this): Escape or a
  // tap outside folds it again, Escape returning focus to its button.
  document.addEventListener("keydown", function (event) {
    var menu = document.querySelector(".nav-menu[open]");
    if (event.key === "Escape" && menu) {
      menu.open = false;
      menu.querySelector("summary").focus();
    }
  });
  document.addEventListener("click", function (event) {
    var menu = document.querySelector(".nav-menu[open]");
    if (menu && !menu.contains(event.target)) menu.open = false;
  });

  // After htmx swaps in a form with errors, move focus to the first invalid field.
  document.addEventListener("htmx:afterSwap", function (event) {
    var invalid = event.detail.target.querySelector("[aria-invalid='true']");
    if (invalid) invalid.focus();
  });
})();
