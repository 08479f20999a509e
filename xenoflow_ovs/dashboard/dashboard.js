// XenoFlow's live dashboard: polls the metrics listener's read-only /status, keeps five
// minutes of samples in this tab and draws rates from counter deltas. No library: the
// DOM is built with textContent only (names come from the config and the API, never
// parsed as HTML) and the charts are inline SVG.
"use strict";

(function () {
  var POLL_MS = 2000;
  var KEEP_S = 300;
  var STALE_READING_S = 5;   // the controller reads both planes every second
  var EVENTS_KEPT = 20;
  var STATUS_URL = "../status";
  var SVG = "http://www.w3.org/2000/svg";

  var samples = [];    // [{t: seconds, st: status}], oldest first, at most KEEP_S old
  var events = [];     // transitions, reconciles and fleet applies seen, newest first
  var seen = {};       // the last of each kind of event already logged
  var downSince = null;

  // ---------------------------------------------------------------- pure helpers

  function now() { return Date.now() / 1000; }

  function hhmmss(t) { return new Date(t * 1000).toTimeString().slice(0, 8); }

  function num(x) { return typeof x === "number" && isFinite(x) ? x : null; }

  // When a plane's counters were read, which is not when this tab polled: the eSwitch's at
  // the controller's last eswitchd poll, OVS's as of its bridges' last count (the oldest
  // bridge's); else the status's own time, else this tab's clock. Rates over reading times
  // do not jitter with the poll's phase and stay right when the tab's timers run late.
  function readAt(sample, plane) {
    var st = sample.st, t = null;
    if (plane === "eswitch") {
      t = num((st.eswitch || {}).polled_at);
    } else if (plane === "ovs") {
      Object.keys(st.bridges || {}).forEach(function (n) {
        var c = num((st.bridges[n] || {}).counted_at);
        if (c !== null && (t === null || c < t)) t = c;
      });
    }
    if (t === null) t = num(st.time);
    return t === null ? sample.t : t;
  }

  // per-second rates between consecutive samples of get(status), over the plane's reading
  // times; null where the counter is missing or went down (a restarted plane: no rate
  // across it) or its reading is older than the status by STALE_READING_S (nobody reads
  // that plane now). The same reading polled twice repeats the last rate: no news.
  function rates(list, get, plane) {
    var out = [], last = null;
    for (var i = 1; i < list.length; i++) {
      var a = num(get(list[i - 1].st)), b = num(get(list[i].st));
      var ta = readAt(list[i - 1], plane), tb = readAt(list[i], plane), v = null;
      if (a !== null && b !== null && b >= a) {
        if (tb > ta) v = (b - a) / (tb - ta);
        else if (tb === ta && b === a) v = last;
      }
      var st = num(list[i].st.time);
      if (v !== null && st !== null && st - tb > STALE_READING_S) v = null;
      out.push({t: list[i].t, v: v});
      last = v;
    }
    return out;
  }

  function lastRate(series) {
    return series.length ? series[series.length - 1].v : null;
  }

  function fmtRate(v, unit) {
    if (v === null) return "–";
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + unit;
  }

  function fmtBytesRate(v) {
    if (v === null) return "–";
    var units = ["B/s", "kB/s", "MB/s", "GB/s"], i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return (v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  }

  function backendPath(svc, b, key) {
    return function (st) {
      var c = ((st.services || {})[svc] || {})[b];
      return c ? c[key] : null;
    };
  }

  // in service, drained or unhealthy, from the status' backend, health and fleet fields
  function backendState(st, svc, b) {
    var c = ((st.services || {})[svc] || {})[b] || {};
    var h = (st.health || {})[svc + "/" + b];
    var localDown = ((st.fleet || {}).local_down || {})[svc] || [];
    if (c.drained) return "drained";
    if (c.healthy === false || (h && h.up === false) || localDown.indexOf(b) >= 0) return "unhealthy";
    if (c.in_service === false) return "out of service";
    return "in service";
  }

  function healthText(h) {
    if (!h) return "";
    var probe = h.ok === null || h.ok === undefined ? "no probe yet" : (h.ok ? "probe ok" : "probe failed");
    if (num(h.seconds) !== null) probe += " in " + (h.seconds * 1000).toFixed(0) + " ms";
    return probe + (h.last ? " (" + h.last + ")" : "");
  }

  // what makes the verdict, as lines: the status carries the verdict of the last check
  // and the states behind it, not the check's own rows (GET /check on the API has them)
  function driftLines(st) {
    var out = [];
    if (st.verdict !== "consistent") out.push(["verdict", "verdict " + st.verdict]);
    var es = st.eswitch || {};
    if (es.driver && es.driver !== "none" && es.connected === false) {
      out.push(["eswitch", "eSwitch not connected" + (es.error ? ": " + es.error : "")]);
    } else if (es.error) {
      out.push(["eswitch", "eSwitch: " + es.error]);
    }
    Object.keys(st.bridges || {}).sort().forEach(function (name) {
      var br = st.bridges[name];
      if (!br.connected) out.push(["bridge", "bridge " + name + " not connected"]);
      else if (br.in_sync === false) {
        out.push(["bridge", "bridge " + name + " not in sync: " + br.flows + " flows, " + br.planned + " planned"]);
      }
    });
    (st.alarms || []).forEach(function (a) {
      out.push(["alarm", a.kind + ": " + a.what + " (" + a.count + " times since " + hhmmss(a.since) + ")"]);
    });
    ((st.overlay || {}).dropped || []).forEach(function (d) {
      out.push(["overlay", "operator edit dropped: " + d]);
    });
    var f = st.fleet;
    if (f && (f.stale || f.state === "rejected")) {
      out.push(["fleet", "fleet: " + (f.state === "rejected" ? "version " + f.rejected_version +
        " rejected: " + (f.error || "") : "stale, cut off from the store or behind it")]);
    }
    return out;
  }

  function transitionText(t) {
    if (!t || !t.at) return null;
    return hhmmss(t.at) + " transition " + (t.why || "change") + ": " + t.ovs + " OVS, " +
      t.eswitch + " eSwitch change(s), " + t.moved_buckets + " bucket(s) moved";
  }

  function reconcileText(r) {
    if (!r || !r.time) return null;
    var acts = Object.keys(r.actions || {}).map(function (k) { return k + " " + r.actions[k]; });
    return hhmmss(r.time) + " " + (r.kind || "reconcile") + " of " + r.bridge + ": " +
      (acts.length ? acts.join(", ") : "nothing to do");
  }

  function fleetApplyText(f) {
    if (!f || !f.applies) return null;
    return "fleet applied version " + f.applied_version + " (" + f.applies + " applies)";
  }

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }

  function byId(id) { return document.getElementById(id); }

  function setText(id, text) { byId(id).textContent = text; }

  function cell(field, text, value) {
    var attrs = {"data-field": field};
    if (value !== undefined) attrs["data-value"] = value === null ? "" : String(value);
    return el("td", attrs, [text]);
  }

  function seriesPeak(series) {
    var max = 0;
    series.forEach(function (s) {
      s.points.forEach(function (p) { if (p.v !== null && p.v > max) max = p.v; });
    });
    return max;
  }

  function fmtScale(v) {
    var units = ["", "k", "M", "G"], i = 0;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return (v >= 10 || i === 0 ? v.toFixed(0) : v.toFixed(1)) + units[i];
  }

  // a small line chart of several series over what is kept (up to KEEP_S, so a fresh tab
  // fills the width too), y from 0 to `max` (the service's peak: every backend's chart on
  // one scale, so rows compare), written in its corner
  function chart(kind, series, label, max) {
    var w = 180, h = 40, pad = 2, t1 = now();
    var t0 = Math.max(t1 - KEEP_S, samples.length ? samples[0].t : t1), span = Math.max(t1 - t0, 1);
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("width", w);
    svg.setAttribute("height", h);
    svg.setAttribute("data-chart", kind);
    svg.setAttribute("data-peak", String(max));
    svg.setAttribute("class", "chart");
    var title = document.createElementNS(SVG, "title");
    title.textContent = label + ", last " + Math.round(span) + " s, scale 0 to " + max.toFixed(1);
    svg.appendChild(title);
    var scale = document.createElementNS(SVG, "text");
    scale.setAttribute("x", w - pad);
    scale.setAttribute("y", 9);
    scale.setAttribute("class", "scale");
    scale.textContent = fmtScale(max);
    svg.appendChild(scale);
    series.forEach(function (s) {
      var pts = s.points.filter(function (p) { return p.v !== null && p.t >= t0; }).map(function (p) {
        var x = pad + (w - 2 * pad) * (p.t - t0) / span;
        var y = h - pad - (h - 2 * pad) * (max > 0 ? p.v / max : 0);
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      var line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("class", "line " + s.cls);
      line.setAttribute("data-series", s.cls);
      svg.appendChild(line);
    });
    return svg;
  }

  // ---------------------------------------------------------------- rendering

  function renderHeader(st) {
    setText("xf-dpu", st.dpu || "?");
    var v = byId("xf-verdict");
    v.textContent = "verdict " + st.verdict;
    v.setAttribute("data-verdict", st.verdict);
    setText("xf-updated", "updated " + hhmmss(now()) + " (" + (st.runtime || "") + ")");
  }

  function renderFallback(st) {
    var box = byId("xf-fallback"), area = byId("xf-alarm-area");
    var fb = st.fallback_packets;
    var rate = lastRate(rates(samples, function (s) { return s.fallback_packets; }, "ovs"));
    area.textContent = "";
    if (fb === null || fb === undefined) {
      box.textContent = "fallback n/a (OVS alone)";
      box.setAttribute("data-alarm", "n/a");
    } else if (fb === 0) {
      box.textContent = "fallback 0 packets";
      box.setAttribute("data-alarm", "false");
    } else {
      box.textContent = "fallback " + fb + " packets, " + fmtRate(rate, "pkt/s");
      box.setAttribute("data-alarm", "true");
      area.appendChild(el("div", {id: "xf-fallback-alarm", role: "alert", "data-value": String(fb)}, [
        "ALARM: fallback " + fb + " packets (" + fmtRate(rate, "pkt/s") + "): OVS carried service " +
        "or route traffic the eSwitch should have"]));
    }
    box.setAttribute("data-value", fb === null || fb === undefined ? "" : String(fb));
    var mo = st.miss_other_packets;
    var moRate = lastRate(rates(samples, function (s) { return s.miss_other_packets; }, "ovs"));
    var m = byId("xf-miss-other");
    m.textContent = "miss_other " + (mo === null || mo === undefined ? "n/a" : mo + " packets, " +
      fmtRate(moRate, "pkt/s"));
    m.setAttribute("data-value", mo === null || mo === undefined ? "" : String(mo));
    m.setAttribute("data-rate", moRate === null ? "" : String(moRate));
  }

  function renderPlanes(st) {
    var es = st.eswitch || {};
    setText("xf-eswitch", "eSwitch " + (es.driver || "?") + (es.driver === "none" ? "" :
      " (" + es.mode + "): " + (es.connected ? "connected" : "NOT connected")));
    var names = Object.keys(st.bridges || {}).sort();
    setText("xf-bridges", "bridges: " + (names.map(function (n) {
      var b = st.bridges[n];
      return n + " " + (b.connected ? (b.in_sync === false ? "out of sync" : "in sync") : "disconnected");
    }).join(", ") || "none"));
  }

  function renderDrift(st) {
    var ul = byId("xf-drift");
    ul.textContent = "";
    var lines = driftLines(st);
    if (!lines.length) lines = [["none", "no drift: both planes hold the intent"]];
    lines.forEach(function (l) { ul.appendChild(el("li", {"data-drift": l[0]}, [l[1]])); });
  }

  function backendSeries(svc, b) {
    var esP = rates(samples, backendPath(svc, b, "eswitch_packets"), "eswitch");
    var esB = rates(samples, backendPath(svc, b, "eswitch_bytes"), "eswitch");
    var ovP = rates(samples, backendPath(svc, b, "ovs_packets"), "ovs");
    var ovB = rates(samples, backendPath(svc, b, "ovs_bytes"), "ovs");
    return {esP: esP, esB: esB, ovP: ovP, ovB: ovB,
            pps: [{cls: "eswitch", points: esP}, {cls: "ovs", points: ovP}],
            bps: [{cls: "eswitch", points: esB}, {cls: "ovs", points: ovB}]};
  }

  function backendRow(st, svc, b, p, peak) {
    var c = st.services[svc][b], state = backendState(st, svc, b);
    var r = {esP: lastRate(p.esP), esB: lastRate(p.esB), ovP: lastRate(p.ovP), ovB: lastRate(p.ovB)};
    var pps = el("td", {"data-field": "pps-chart"}, [chart("pps", p.pps, svc + "/" + b + " packets/s", peak.pps)]);
    var bps = el("td", {"data-field": "bps-chart"}, [chart("bps", p.bps, svc + "/" + b + " bytes/s", peak.bps)]);
    var es = c.eswitch_packets === null || c.eswitch_packets === undefined;
    return el("tr", {"class": "xf-backend", "data-service": svc, "data-backend": b,
                     "data-state": state.replace(/ /g, "-")}, [
      el("th", {"data-field": "name"}, [b]),
      el("td", {"data-field": "state", "class": "state"}, [state,
        el("div", {"class": "muted", "data-field": "health"}, [healthText((st.health || {})[svc + "/" + b])])]),
      cell("eswitch-pps", es ? "n/a" : fmtRate(r.esP, "pkt/s"), r.esP),
      cell("eswitch-bps", es ? "n/a" : fmtBytesRate(r.esB), r.esB),
      cell("ovs-pps", fmtRate(r.ovP, "pkt/s"), r.ovP),
      cell("ovs-bps", fmtBytesRate(r.ovB), r.ovB),
      cell("eswitch-packets", es ? "n/a" : String(c.eswitch_packets), es ? null : c.eswitch_packets),
      cell("ovs-packets", String(c.ovs_packets), c.ovs_packets),
      pps, bps
    ]);
  }

  function renderServices(st) {
    var box = byId("xf-services");
    box.textContent = "";
    Object.keys(st.services || {}).sort().forEach(function (svc) {
      var head = el("tr", {}, ["backend", "state", "eSwitch pkt/s", "eSwitch B/s", "OVS pkt/s", "OVS B/s",
        "eSwitch packets", "OVS packets", "packets/s", "bytes/s"].map(function (h) { return el("th", {}, [h]); }));
      var names = Object.keys(st.services[svc]).sort(), peak = {pps: 0, bps: 0}, series = {};
      names.forEach(function (b) {
        series[b] = backendSeries(svc, b);
        peak.pps = Math.max(peak.pps, seriesPeak(series[b].pps));
        peak.bps = Math.max(peak.bps, seriesPeak(series[b].bps));
      });
      var rows = names.map(function (b) { return backendRow(st, svc, b, series[b], peak); });
      box.appendChild(el("section", {"class": "xf-service", "data-service": svc}, [
        el("h2", {}, ["service " + svc]),
        el("p", {"class": "legend"}, [el("span", {"class": "key eswitch"}, ["eSwitch"]), " ",
          el("span", {"class": "key ovs"}, ["OVS"])]),
        el("table", {}, [el("thead", {}, [head]), el("tbody", {}, rows)])
      ]));
    });
  }

  function limitValue(v) { return v === null || v === undefined ? "–" : String(v); }

  function planeDrops(lp, plane) {
    var d = (lp || {})[plane];
    return d ? (d.service || 0) + (d.bucket || 0) : null;
  }

  function limitRow(st, svc) {
    var lim = st.limits[svc];
    var drops = function (plane) { return function (s) { return planeDrops(((s.limits || {})[svc] || {}).limited_packets, plane); }; };
    var es = planeDrops(lim.limited_packets, "eswitch"), ov = planeDrops(lim.limited_packets, "ovs");
    var esR = lastRate(rates(samples, drops("eswitch"), "eswitch")),
      ovR = lastRate(rates(samples, drops("ovs"), "status"));
    var top = (lim.buckets || []).slice(0, 5).map(function (b) {
      return "bucket " + b.bucket + ": " + ((b.eswitch || 0) + (b.ovs || 0));
    }).join(", ") + (lim.buckets_left_out ? " (+" + lim.buckets_left_out + " more)" : "");
    return el("tr", {"class": "xf-limit", "data-service": svc}, [
      el("th", {"data-field": "service"}, [svc]),
      cell("pps", limitValue(lim.pps), lim.pps), cell("burst", limitValue(lim.burst), lim.burst),
      cell("per-bucket-pps", limitValue(lim.per_bucket_pps), lim.per_bucket_pps),
      cell("per-bucket-burst", limitValue(lim.per_bucket_burst), lim.per_bucket_burst),
      cell("eswitch-limited", es === null ? "n/a" : es + " (" + fmtRate(esR, "pkt/s") + ")", es),
      cell("ovs-limited", ov === null ? "n/a" : ov + " (" + fmtRate(ovR, "pkt/s") + ")", ov),
      cell("buckets", top || "none")
    ]);
  }

  function renderLimits(st) {
    var names = Object.keys(st.limits || {}).sort(), table = byId("xf-limits");
    byId("xf-limits-section").hidden = !names.length;
    table.textContent = "";
    if (!names.length) return;
    table.appendChild(el("tr", {}, ["service", "pps", "burst", "per-bucket pps", "per-bucket burst",
      "eSwitch rate-limited", "OVS rate-limited", "buckets that dropped most"].map(function (h) {
      return el("th", {}, [h]);
    })));
    names.forEach(function (svc) { table.appendChild(limitRow(st, svc)); });
  }

  function announcement(f) {
    var bgp = f.bgp;
    if (!bgp) return f.drained ? "drained (no BGP)" : "no BGP speaker";
    return (bgp.announced && bgp.announced.length ? "announced " + bgp.announced.join(" ") :
      "not announced") + " (" + bgp.why + ")";
  }

  // another DPU's row as the store showed it at this DPU's last heartbeat (fleet.dpus)
  function peerDpuRow(name, d, f) {
    var ann = (d.announced ? "announced" : "not announced") + (d.announce_why && d.announce_why !== "announced" ?
      " (" + d.announce_why + ")" : "");
    return el("tr", {"class": "xf-dpu", "data-dpu": name, "data-self": "false"}, [
      el("th", {"data-field": "dpu"}, [name]),
      cell("version", "applied " + d.applied_version + " / store " + limitValue(f.store_version), d.applied_version),
      cell("state", (d.state || "?") + (d.drained ? ", drained" : "") + (d.stale ? ", stale" : "") +
        (d.error ? ": " + d.error : "")),
      cell("verdict", d.verdict || "–"),
      cell("announcement", ann),
      cell("store", d.heard ? "heard from" : "silent (no recent heartbeat)")
    ]);
  }

  // a DPU's status carries its own part of the fleet, live, and every DPU's row as the store
  // last showed it (`xenoflow fleet status` reads the store itself)
  function renderFleet(st) {
    var f = st.fleet, table = byId("xf-fleet"), peers = byId("xf-fleet-peers");
    byId("xf-fleet-section").hidden = !f;
    table.textContent = "";
    peers.textContent = "";
    if (!f) return;
    var me = f.dpu || st.dpu;
    table.appendChild(el("tr", {}, ["DPU", "version", "state", "verdict", "announcement", "store"].map(
      function (h) { return el("th", {}, [h]); })));
    var names = Object.keys(f.dpus || {});
    if (names.indexOf(me) < 0) names.push(me);
    names.sort().forEach(function (name) {
      if (name !== me) {
        table.appendChild(peerDpuRow(name, f.dpus[name], f));
        return;
      }
      table.appendChild(el("tr", {"class": "xf-dpu", "data-dpu": me, "data-self": "true"}, [
        el("th", {"data-field": "dpu"}, [me + " (this DPU)"]),
        cell("version", "applied " + f.applied_version + " / store " + limitValue(f.store_version), f.applied_version),
        cell("state", f.state + (f.drained ? ", drained" : "") + (f.error ? ": " + f.error : "")),
        cell("verdict", st.verdict),
        cell("announcement", announcement(f)),
        cell("store", (f.connected ? "connected" : "cut off") + (f.stale ? ", stale" : "") + " (" + f.source + ")")
      ]));
    });
    var p = (f.bgp || {}).peers || {};
    Object.keys(p).sort().forEach(function (addr) {
      var s = p[addr] || {};
      peers.appendChild(el("li", {"data-peer": addr}, [me + "'s peer " + addr + ": BGP " + (s.bgp || "?") +
        ", BFD " + (s.bfd || "off") + (s.prefixes_sent !== undefined ? ", " + s.prefixes_sent + " prefixes sent" : "")]));
    });
  }

  // the status carries the last transition and reconcile; the log keeps what this tab saw,
  // newest first (a tab's first status brings both at once: ordered by their own times)
  function noteEvents(st) {
    var fresh = [];
    [["transition", st.last_transition, transitionText(st.last_transition)],
     ["reconcile", st.last_reconcile, reconcileText(st.last_reconcile)],
     ["fleet-apply", null, fleetApplyText(st.fleet)]].forEach(function (e) {
      if (e[2] && seen[e[0]] !== e[2]) {
        seen[e[0]] = e[2];
        var o = e[1] || {}, t = num(o.at) !== null ? num(o.at) : num(o.time);
        fresh.push({kind: e[0], text: e[2], t: t === null ? now() : t});
      }
    });
    fresh.sort(function (a, b) { return b.t - a.t; });
    events = fresh.concat(events).slice(0, EVENTS_KEPT);
  }

  function renderEvents(st) {
    setText("xf-transition", "last transition: " + (transitionText(st.last_transition) || "none yet"));
    setText("xf-reconcile", "last reconcile: " + (reconcileText(st.last_reconcile) || "none yet"));
    var ol = byId("xf-events");
    ol.textContent = "";
    events.forEach(function (e) { ol.appendChild(el("li", {"data-event": e.kind}, [e.text])); });
  }

  function render(st) {
    renderHeader(st);
    renderFallback(st);
    renderPlanes(st);
    renderDrift(st);
    renderServices(st);
    renderLimits(st);
    renderFleet(st);
    noteEvents(st);
    renderEvents(st);
  }

  // ---------------------------------------------------------------- reachability

  function setReachable(ok, why) {
    var banner = byId("xf-banner"), main = byId("xf-main");
    if (ok) {
      downSince = null;
      banner.hidden = true;
      banner.setAttribute("data-state", "ok");
      banner.textContent = "";
    } else {
      if (downSince === null) downSince = now();
      banner.hidden = false;
      banner.setAttribute("data-state", "unreachable");
      banner.setAttribute("data-since", String(downSince));
      banner.textContent = "controller unreachable since " + hhmmss(downSince) + " (" + why +
        "); showing the last data, retrying every " + POLL_MS / 1000 + " s";
    }
    main.setAttribute("data-stale", ok ? "false" : "true");
    main.classList.toggle("stale", !ok);
  }

  function keep(st) {
    var t = now();
    samples.push({t: t, st: st});
    while (samples.length && samples[0].t < t - KEEP_S) samples.shift();
  }

  function poll() {
    fetch(STATUS_URL, {cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (st) {
      return st;
    }, function (e) {   // only a failed fetch is "unreachable", never a bug in rendering
      setReachable(false, e && e.message ? e.message : "no answer");
      return null;
    }).then(function (st) {
      if (st === null) return;
      keep(st);
      setReachable(true);
      render(st);
    }).catch(function (e) {
      console.error("dashboard: rendering failed", e);
    }).then(function () {
      setTimeout(poll, POLL_MS);
    });
  }

  poll();
})();
