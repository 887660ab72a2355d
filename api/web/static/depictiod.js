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
  var pagePath = window.location.pathname + window.location.search;
  var source = null;
  var pending = null;
  var busy = false;
  var again = false;
  var stopped = false;
  var retrySeconds = 5;

  function setState(state, text) {
    body.setAttribute("data-live-state", state);
    if (note) { note.textContent = text; }
  }

  function stop() {
    // The session ended or the page is gone: free this tab's place among the user's streams.
    stopped = true;
    if (source !== null) { source.close(); }
    setState("closed", "live updates stopped; reload the page");
  }

  function load() {
    // An expired session is renewed by a redirect that leads back to this page.
    return fetch(pagePath, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        var landed = new URL(response.url);
        if (!response.ok || landed.pathname + landed.search !== pagePath) { throw new Error("status " + response.status); }
        return response.text();
      });
  }

  function apply(html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var fresh = page.getElementById("content");
    if (fresh) {
      content.innerHTML = fresh.innerHTML;
      body.setAttribute("data-refreshed", String(Number(body.getAttribute("data-refreshed") || "0") + 1));
    }
  }

  function refresh() {
    pending = null;
    if (busy) { again = true; return; }
    busy = true;
    load()
      .then(apply)
      .catch(stop)
      .then(function () {
        busy = false;
        if (again && !stopped) { again = false; schedule(); }
      });
  }

  function schedule() {
    // Events come in bursts (a scan adds many files): one refresh covers a burst.
    if (pending === null && !stopped) { pending = window.setTimeout(refresh, 300); }
  }

  function reopen() {
    // The stream was refused (an expired session, or too many open streams): renew the
    // session through a page load, then open the stream again, waiting longer each time.
    setState("connecting", "reconnecting…");
    window.setTimeout(function () {
      // The page may have changed while no stream was open, so the new content is shown too.
      load().then(function (html) { apply(html); retrySeconds = Math.min(retrySeconds * 2, 60); open(); }).catch(stop);
    }, retrySeconds * 1000);
  }

  function open() {
    if (stopped) { return; }
    source = new EventSource("/depictio/api/v1/events");
    source.onopen = function () { retrySeconds = 5; setState("open", "live"); };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { reopen(); }
      else { setState("connecting", "reconnecting…"); }
    };
    types.forEach(function (type) { source.addEventListener(type, schedule); });
  }

  open();
  window.addEventListener("pagehide", function () {
    stopped = true;
    if (source !== null) { source.close(); }
  });
}());
