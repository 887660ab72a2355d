// Live update: when the service reports a change, fetch this page again and replace its content.
// Every page reads completely without this script.
(function () {
  "use strict";
  var content = document.getElementById("content");
  if (!content || content.getAttribute("data-live") !== "1" || !window.EventSource || !window.fetch) {
    return;
  }
  var body = document.body;
  var note = document.getElementById("live-note");
  var types = ["run.added", "file.added", "file.failed", "table.updated", "schema.changed", "scan.finished", "history.gap"];
  var pending = null;
  var busy = false;
  var again = false;

  function setState(state, text) {
    body.setAttribute("data-live-state", state);
    if (note) { note.textContent = text; }
  }

  function refresh() {
    pending = null;
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        // A redirect means the session ended: the next navigation signs in again.
        if (!response.ok || response.redirected) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        var fresh = page.getElementById("content");
        if (fresh) {
          content.innerHTML = fresh.innerHTML;
          body.setAttribute("data-refreshed", String(Number(body.getAttribute("data-refreshed") || "0") + 1));
        }
      })
      .catch(function () { setState("closed", "live updates stopped; reload the page"); })
      .then(function () {
        busy = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    // Events come in bursts (a scan adds many files): one refresh covers a burst.
    if (pending === null) { pending = window.setTimeout(refresh, 300); }
  }

  var source = new EventSource("/depictio/api/v1/events");
  source.onopen = function () { setState("open", "live"); };
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) { setState("closed", "live updates stopped; reload the page"); }
    else { setState("connecting", "reconnecting…"); }
  };
  types.forEach(function (type) { source.addEventListener(type, schedule); });
  window.addEventListener("pagehide", function () { source.close(); });
}());
