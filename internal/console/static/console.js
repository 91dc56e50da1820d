// Pluto console behaviour. No inline scripts (the content security
// policy forbids them): everything is wired here from data- attributes.
(function () {
  "use strict";
  var csrf = function () {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  };

  // htmx requests carry the CSRF token as a header.
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf();
  });

  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t.matches("select[data-autosubmit]")) t.form.submit();
    if (t.matches("input[data-select-all]")) {
      var name = t.getAttribute("data-select-all");
      document.querySelectorAll('input[type="checkbox"][name="' + name + '"]').forEach(function (c) { c.checked = t.checked; });
    }
  });

  document.addEventListener("submit", function (e) {
    var f = e.target;
    var msg = f.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  }, true);

  // Search in the log: hide the lines that do not contain the text.
  document.addEventListener("input", function (e) {
    var t = e.target;
    if (!t.matches("input[data-log-search]")) return;
    var q = t.value.toLowerCase();
    document.querySelectorAll(t.getAttribute("data-log-search") + " .line").forEach(function (l) {
      l.classList.toggle("hidden", q !== "" && l.textContent.toLowerCase().indexOf(q) < 0);
    });
  });

  // Follow a run's log live (Server-Sent Events from the API; the browser
  // resumes after a drop with Last-Event-ID).
  function followLog(pre) {
    if (pre.getAttribute("data-terminal") === "true" && pre.getAttribute("data-done") === "true") return;
    var url = pre.getAttribute("data-follow") + "&after=" + encodeURIComponent(pre.getAttribute("data-after") || "0");
    var es = new EventSource(url);
    var search = document.querySelector("input[data-log-search]");
    es.onmessage = function (ev) {
      var line;
      try { line = JSON.parse(ev.data); } catch (err) { return; }
      if (pre.querySelector('[data-seq="' + line.seq + '"]')) return;
      var span = document.createElement("span");
      span.className = "line " + (line.stream || "");
      span.setAttribute("data-seq", String(line.seq));
      var t = (line.time || "").replace("T", " ").replace(/\.\d+Z$|Z$/, "");
      span.textContent = t + " [" + line.stream + "] " + line.text + "\n";
      if (search && search.value && span.textContent.toLowerCase().indexOf(search.value.toLowerCase()) < 0) span.classList.add("hidden");
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.appendChild(span);
      pre.setAttribute("data-after", String(line.seq));
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    };
    es.addEventListener("end", function () {
      es.close();
      pre.setAttribute("data-done", "true");
      document.body.dispatchEvent(new CustomEvent("pluto:changed"));
    });
  }

  // Live changes: the server says when runs changed; parts of the page
  // that show runs re-read themselves (htmx, hx-trigger "pluto:changed").
  // A list with selected rows is left alone until the selection is used.
  function listen() {
    var src = document.body.getAttribute("data-events");
    if (!src || !window.EventSource) return;
    var es = new EventSource(src);
    var pending = false;
    es.addEventListener("changed", function () {
      if (pending) return;
      pending = true;
      setTimeout(function () {
        pending = false;
        if (document.querySelector('#rows input[name="id"]:checked')) return;
        document.body.dispatchEvent(new CustomEvent("pluto:changed"));
      }, 250);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("pre[data-follow]").forEach(followLog);
    listen();
  });
})();

// The overview chart: finished runs by status over the last hour or day
// (GET /api/v1/stats/series, from the store's counters), drawn with uPlot
// and redrawn when runs change (at most every 10 s).
(function () {
  "use strict";
  var colors = {succeeded: "#1a7f37", failed: "#b42318", timed_out: "#9a6700", cancelled: "#57606a", skipped: "#8250df"};
  var plot = null, lastDraw = 0;
  function draw(el) {
    var url = el.getAttribute("data-series") + "?window=" + encodeURIComponent(el.getAttribute("data-window"));
    fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}}).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    }).then(function (data) {
      var labels = JSON.parse(el.getAttribute("data-labels") || "{}");
      var statuses = Object.keys(colors);
      var xs = [], ys = statuses.map(function () { return []; });
      (data.points || []).forEach(function (p) {
        xs.push(Date.parse(p.t) / 1000);
        statuses.forEach(function (s, i) { ys[i].push(p[s] || 0); });
      });
      var opts = {
        width: Math.max(280, el.clientWidth), height: 220,
        series: [{}].concat(statuses.map(function (s) {
          return {label: labels[s] || s, stroke: colors[s], width: 2, points: {show: false}};
        })),
        axes: [{stroke: "currentColor"}, {stroke: "currentColor"}],
      };
      if (plot) plot.destroy();
      plot = new uPlot(opts, [xs].concat(ys), el);
      el.setAttribute("data-points", String(xs.length));
      document.getElementById("chart-error").hidden = true;
      lastDraw = Date.now();
    }).catch(function (err) {
      var e = document.getElementById("chart-error");
      e.textContent = String(err);
      e.hidden = false;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("chart");
    if (!el || !window.uPlot) return;
    draw(el);
    document.querySelectorAll("button[data-chart-window]").forEach(function (b) {
      b.addEventListener("click", function () {
        el.setAttribute("data-window", b.getAttribute("data-chart-window"));
        document.querySelectorAll("button[data-chart-window]").forEach(function (o) {
          o.setAttribute("aria-pressed", String(o === b));
        });
        draw(el);
      });
    });
    document.body.addEventListener("pluto:changed", function () {
      if (Date.now() - lastDraw > 10000) draw(el);
    });
  });
})();
