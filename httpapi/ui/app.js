// dhtkit node page: live counters and the message stream. The page is
// complete without this script; it only keeps the numbers moving.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var live = {};
  document.querySelectorAll("[data-live]").forEach(function (el) { live[el.dataset.live] = el; });
  function set(name, text) { if (live[name]) live[name].textContent = text; }

  function human(d) {
    d = Math.floor(d);
    if (d < 60) return d + "s";
    if (d < 3600) return Math.floor(d / 60) + "m " + String(d % 60).padStart(2, "0") + "s";
    if (d < 172800) return Math.floor(d / 3600) + "h " + String(Math.floor(d / 60) % 60).padStart(2, "0") + "m";
    return Math.floor(d / 86400) + "d " + String(Math.floor(d / 3600) % 24).padStart(2, "0") + "h";
  }
  function bytes(n) {
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n.toFixed(0)) + " " + u[i];
  }

  var points = 120, hin = [], hout = [], prev = null;
  function spark(name, hist, peak) {
    if (!live[name]) return;
    // Newest at the right edge. A single sample is drawn as a level
    // stroke one step wide: a polyline of one point draws nothing, and the
    // chart stayed empty for the first seconds (and in screenshots).
    if (hist.length === 1) hist = [hist[0], hist[0]];
    var off = points - hist.length;
    var pts = hist.map(function (v, i) {
      return ((off + i) * 300 / (points - 1)).toFixed(1) + "," + (46 - v * 42 / peak).toFixed(1);
    });
    live[name].setAttribute("points", pts.join(" "));
  }

  function onStats(s) {
    set("uptime", human(s.uptime_s));
    set("contacts", s.contacts);
    set("keys", s.keys);
    set("bytes", bytes(s.bytes));
    set("in", s.messages_in);
    set("out", s.messages_out);
    Object.keys(s.queries_in).forEach(function (m) {
      set("in-" + m, s.queries_in[m]);
      set("out-" + m, s.queries_out[m]);
    });
    if (prev) {
      var dt = Math.max(0.1, s.uptime_s - prev.uptime_s);
      var rin = Math.max(0, (s.messages_in - prev.messages_in) / dt);
      var rout = Math.max(0, (s.messages_out - prev.messages_out) / dt);
      set("rate-in", rin.toFixed(rin < 10 ? 1 : 0));
      set("rate-out", rout.toFixed(rout < 10 ? 1 : 0));
      hin.push(rin); hout.push(rout);
      if (hin.length > points) { hin.shift(); hout.shift(); }
      var peak = Math.max(1, Math.max.apply(null, hin.concat(hout)));
      spark("spark-in", hin, peak);
      spark("spark-out", hout, peak);
    }
    prev = s;
  }

  var list = live.messages, shown = 40;
  function onMessage(m) {
    if (!list) return;
    var first = list.firstElementChild;
    if (first && first.classList.contains("muted")) list.removeChild(first);
    var li = document.createElement("li");
    li.className = m.dir + " " + m.kind + " fresh";
    var t = new Date(m.time);
    var parts = [
      ["time", t.toTimeString().slice(0, 8)],
      ["span", m.dir, "dir"],
      ["span", m.method || m.kind, "kind"],
      ["code", m.peer]
    ];
    if (m.target) parts.push(["span", "→ " + m.target.slice(0, 8), "muted"]);
    if (m.infohash) parts.push(["span", "ih " + m.infohash.slice(0, 8), "muted"]);
    parts.forEach(function (p, i) {
      var el = document.createElement(p[0]);
      el.textContent = p[1]; // text, never markup: it came from the network
      if (p[2]) el.className = p[2];
      if (i) li.appendChild(document.createTextNode(" "));
      li.appendChild(el);
    });
    list.insertBefore(li, list.firstChild);
    while (list.children.length > shown) list.removeChild(list.lastChild);
  }

  // Bursts of messages are drawn at most a few times a second, so the page
  // stays calm under load.
  var queue = [];
  setInterval(function () {
    var batch = queue.splice(0, queue.length).slice(-8);
    batch.forEach(onMessage);
  }, 400);

  var es = new EventSource("/v1/events");
  es.addEventListener("stats", function (e) { onStats(JSON.parse(e.data)); });
  es.addEventListener("message", function (e) {
    queue.push(JSON.parse(e.data));
    if (queue.length > 200) queue.shift();
  });
})();
