// kube-sentiment console: fills each page from the JSON endpoints and draws its charts as inline SVG.
// Hand-written, no framework, no build step, no external asset. Text from the server goes through textContent
// (never innerHTML), so nothing a model version, reason or drift example contains is interpreted as markup.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const COLOURS = { stable: "#1f5fbf", canary: "#b45309", shadow: "#6d28d9", negative: "#c62828",
    neutral: "#6b7280", positive: "#2e7d32", ok: "#2e7d32", warn: "#b45309", drift: "#c62828",
    insufficient_data: "#9ca3af", error: "#6a1b9a" };
  const PALETTE = ["#1f5fbf", "#b45309", "#6d28d9", "#2e7d32", "#c62828", "#0e7490", "#6b7280"];
  const state = { env: null, session: null, timer: null };

  // --- DOM helpers -------------------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "style") node.style.cssText = value;  // CSSOM: allowed by the CSP, unlike a style attribute
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const content = () => document.getElementById("content");
  function status(message) { document.getElementById("status").textContent = message || ""; }
  function badge(text, cls) { return el("span", { class: `badge ${cls || text || ""}` }, String(text ?? "–").replace(/_/g, " ")); }
  function fmt(value, digits = 3) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    if (typeof value !== "number") return String(value);
    if (value !== 0 && Math.abs(value) < 0.001) return value.toExponential(1);
    return String(Number(value.toFixed(digits)));
  }
  function pct(value) { return value === null || value === undefined ? "–" : `${fmt(100 * value, 2)} %`; }
  function when(value) {
    if (!value) return "–";
    const d = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    return Number.isNaN(d.getTime()) ? String(value) : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
  function table(caption, headers, rows) {
    return el("table", {}, el("caption", {}, caption),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) =>
        c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))))));
  }
  const num = (v) => el("td", { class: "num" }, v);

  // --- HTTP --------------------------------------------------------------------------------------------------
  async function getJSON(url) {
    const response = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `${url}: HTTP ${response.status}`);
    return body;
  }
  async function postJSON(url, payload) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (state.session && state.session.csrf_token) headers["x-csrf-token"] = state.session.csrf_token;
    const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(payload), credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign(new Error(body.error || `HTTP ${response.status}`), { status: response.status });
    return body;
  }
  const q = (path) => `${path}?environment=${encodeURIComponent(state.env)}`;

  // --- charts ------------------------------------------------------------------------------------------------
  // A line chart of one or more series of {x, y}; y may be null (gap). Optional horizontal thresholds.
  function lineChart({ series, width = 300, height = 70, label, thresholds = [], yMin = 0, yMax = null, kind = "line",
    xFormat = null, marks = false }) {
    const pad = { l: 34, r: 6, t: 6, b: xFormat ? 18 : 14 };
    const xs = series.flatMap((s) => s.points.map((p) => p.x));
    const ys = series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y !== null && y !== undefined);
    let lo = yMin === null ? Math.min(...ys) : Math.min(yMin, ...ys);
    let hi = Math.max(yMax ?? (yMin === null ? -Infinity : 0), ...ys, ...thresholds.map((t) => t.y));
    if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
    if (yMin === null) { const margin = (hi - lo) * 0.15 || 0.01; lo -= margin; hi += margin; }
    if (hi === lo) hi = lo + 1;
    const x0 = Math.min(...xs), x1 = Math.max(...xs);
    const sx = (x) => pad.l + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (width - pad.l - pad.r);
    const sy = (y) => height - pad.b - ((y - lo) / (hi - lo || 1)) * (height - pad.t - pad.b);
    const root = svg("svg", { class: "chart", "data-chart": kind, viewBox: `0 0 ${width} ${height}`, width, height,
      role: "img", "aria-label": label }, svg("title", {}, label));
    root.append(svg("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b }));
    root.append(svg("text", { x: pad.l - 4, y: pad.t + 8, "text-anchor": "end" }, fmt(hi, 2)));
    root.append(svg("text", { x: pad.l - 4, y: height - pad.b, "text-anchor": "end" }, fmt(lo, 2)));
    for (const t of thresholds) {
      root.append(svg("line", { class: `threshold-${t.kind}`, x1: pad.l, x2: width - pad.r, y1: sy(t.y), y2: sy(t.y) },
        svg("title", {}, `${t.kind} threshold ${fmt(t.y)}`)));
    }
    if (xFormat && xs.length) {
      root.append(svg("text", { x: pad.l, y: height - 3 }, xFormat(Math.min(...xs))));
      root.append(svg("text", { x: width - pad.r, y: height - 3, "text-anchor": "end" }, xFormat(Math.max(...xs))));
    }
    let drawn = 0;
    for (const s of series) {
      let d = "", pen = false;
      for (const p of s.points) {
        if (p.y === null || p.y === undefined) { pen = false; continue; }
        d += `${pen ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`;
        pen = true;
        drawn += 1;
      }
      if (d) root.append(svg("path", { d, fill: "none", stroke: s.colour, "stroke-width": 2, "data-series": s.name }));
      const last = s.points.filter((p) => p.y !== null && p.y !== undefined).at(-1);
      if (last) root.append(svg("circle", { cx: sx(last.x), cy: sy(last.y), r: 2.5, fill: s.colour }));
      if (marks) {
        for (const p of s.points.filter((p) => p.y !== null && p.y !== undefined && !p.verdict)) {
          root.append(svg("circle", { cx: sx(p.x), cy: sy(p.y), r: 3, fill: s.colour },
            svg("title", {}, `${s.name} ${xFormat ? xFormat(p.x) : p.x}: ${fmt(p.y)}`)));
        }
      }
      for (const p of s.points.filter((p) => p.verdict && p.y !== null && p.y !== undefined)) {
        root.append(svg("circle", { cx: sx(p.x), cy: sy(p.y), r: 3, fill: COLOURS[p.verdict] || "#999" },
          svg("title", {}, `${when(p.at)}: ${fmt(p.y)} (${p.verdict})`)));
      }
    }
    root.dataset.points = String(drawn);
    return root;
  }

  // Horizontal stacked bar of shares (traffic split).
  function splitBar(parts, label, width = 640) {
    const height = 34;
    const root = svg("svg", { class: "chart split", "data-chart": "traffic-split", viewBox: `0 0 ${width} ${height}`,
      width, height, role: "img", "aria-label": label }, svg("title", {}, label));
    let x = 0;
    const total = parts.reduce((a, p) => a + p.value, 0) || 1;
    for (const p of parts) {
      const w = (p.value / total) * width;
      root.append(svg("rect", { x, y: 0, width: Math.max(w, 0), height: 24, fill: p.colour, "data-share": p.name },
        svg("title", {}, `${p.name}: ${p.value} %`)));
      const text = `${p.name} ${p.value} %`;
      if (w > text.length * 7 + 12) root.append(svg("text", { x: x + 6, y: 16, class: "on-bar" }, text));
      x += w;
    }
    root.dataset.points = String(parts.length);
    return root;
  }

  // Vertical stacked bars: one bar per bucket, one segment per class.
  function stackedBars({ buckets, stacks, width = 640, height = 120, label }) {
    const pad = { l: 34, r: 4, t: 6, b: 16 };
    const totals = buckets.map((_, i) => stacks.reduce((a, s) => a + (s.values[i] || 0), 0));
    const hi = Math.max(1, ...totals);
    const bw = (width - pad.l - pad.r) / Math.max(buckets.length, 1);
    const root = svg("svg", { class: "chart", "data-chart": "class-mix", viewBox: `0 0 ${width} ${height}`, width, height,
      role: "img", "aria-label": label }, svg("title", {}, label));
    root.append(svg("text", { x: pad.l - 4, y: pad.t + 8, "text-anchor": "end" }, String(hi)));
    let drawn = 0;
    buckets.forEach((bucket, i) => {
      let y = height - pad.b;
      for (const s of stacks) {
        const v = s.values[i] || 0;
        if (!v) continue;
        const h = (v / hi) * (height - pad.t - pad.b);
        y -= h;
        root.append(svg("rect", { x: pad.l + i * bw + 1, y, width: Math.max(bw - 2, 1), height: h, fill: s.colour },
          svg("title", {}, `${when(bucket)}: ${s.name} ${v} (${pct(v / totals[i])})`)));
        drawn += 1;
      }
    });
    if (buckets.length) {
      root.append(svg("text", { x: pad.l, y: height - 3 }, when(buckets[0]).slice(5, 16)));
      root.append(svg("text", { x: width - pad.r, y: height - 3, "text-anchor": "end" }, when(buckets.at(-1)).slice(5, 16)));
    }
    root.dataset.points = String(drawn);
    return root;
  }

  // Horizontal bars of class probabilities.
  function probabilityBars(probabilities, label) {
    const entries = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
    const width = 420, row = 26, height = entries.length * row + 4;
    const root = svg("svg", { class: "chart", "data-chart": "probabilities", viewBox: `0 0 ${width} ${height}`, width,
      height, role: "img", "aria-label": label }, svg("title", {}, label));
    entries.forEach(([name, p], i) => {
      const y = i * row + 2;
      root.append(svg("text", { x: 0, y: y + 15 }, name));
      root.append(svg("rect", { x: 80, y, width: 260, height: 18, fill: "#eef1f5" }));
      root.append(svg("rect", { x: 80, y, width: Math.max(260 * p, 1), height: 18, fill: COLOURS[name] || PALETTE[i % PALETTE.length],
        "data-class": name }, svg("title", {}, `${name}: ${pct(p)}`)));
      root.append(svg("text", { x: 346, y: y + 15 }, pct(p)));
    });
    root.dataset.points = String(entries.length);
    return root;
  }

  // A timeline of rollout decisions: one row per version, a marker per decision.
  function timeline(decisions, label, width = 900) {
    const versions = [...new Set(decisions.map((d) => d.version))];
    const times = decisions.map((d) => new Date(d.at).getTime()).filter((t) => !Number.isNaN(t));
    const row = 28, pad = { l: 90, r: 12, t: 8, b: 20 };
    const height = pad.t + pad.b + Math.max(versions.length, 1) * row;
    const t0 = Math.min(...times), t1 = Math.max(...times);
    const sx = (t) => pad.l + (t1 > t0 ? (t - t0) / (t1 - t0) : 0.5) * (width - pad.l - pad.r);
    const root = svg("svg", { class: "chart", "data-chart": "rollout-timeline", viewBox: `0 0 ${width} ${height}`,
      width, height, role: "img", "aria-label": label }, svg("title", {}, label));
    let drawn = 0;
    versions.forEach((v, i) => {
      const y = pad.t + i * row + row / 2;
      root.append(svg("text", { x: 4, y: y + 4 }, `version ${v}`));
      root.append(svg("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: y, y2: y }));
      for (const d of decisions.filter((d) => d.version === v)) {
        const t = new Date(d.at).getTime();
        if (Number.isNaN(t)) continue;
        const colour = { promoted: COLOURS.ok, advance: COLOURS.ok, started: COLOURS.stable, resumed: COLOURS.stable,
          hold: COLOURS.warn, rollback: COLOURS.drift, rolled_back: COLOURS.drift }[d.decision] || "#6b7280";
        root.append(svg("circle", { cx: sx(t), cy: y, r: 6, fill: colour, "data-decision": d.decision },
          svg("title", {}, `${when(d.at)} version ${v}: ${d.decision}${d.step ? " at " + d.step : ""}: ${d.reason || ""}`)));
        drawn += 1;
      }
    });
    if (times.length) {
      root.append(svg("text", { x: pad.l, y: height - 4 }, when(t0 / 1000)));
      root.append(svg("text", { x: width - pad.r, y: height - 4, "text-anchor": "end" }, when(t1 / 1000)));
    }
    root.dataset.points = String(drawn);
    return root;
  }

  function legend(items) {
    return el("div", { class: "legend" }, items.map(([name, colour]) => el("span", {}, el("i", { style: `background:${colour}` }), name)));
  }

  // --- pages -------------------------------------------------------------------------------------------------
  function trackCard(t) {
    const points = t.series || [];
    const xs = (key, scale = 1) => points.map((p) => ({ x: p.t, y: p[key] === null || p[key] === undefined ? null : p[key] * scale }));
    const now = t.current || {};
    const spark = (key, lbl, colour, scale = 1) => (points.length ? lineChart({ series: [{ name: key, colour, points: xs(key, scale) }],
      width: 300, height: 54, label: `${lbl} of the ${t.track} track over the last ${points.length} scrapes`, kind: `spark-${key}` })
      : el("p", { class: "muted small" }, "no traffic measured yet"));
    const latency = points.length ? lineChart({ series: [
      { name: "p50", colour: COLOURS.stable, points: xs("p50_ms") },
      { name: "p99", colour: COLOURS.canary, points: xs("p99_ms") }],
    width: 300, height: 54, label: `p50 and p99 latency (ms) of the ${t.track} track`, kind: "spark-latency" }) : null;
    return el("section", { class: "card", "aria-label": `${t.track} track` },
      el("div", { class: "row" }, el("h3", {}, badge(t.track, `track-${t.track}`), ` version ${t.model_version ?? "?"}`),
        el("span", { class: "muted" }, t.weight === null || t.weight === undefined ? "share unknown" :
          `${t.weight} % ${t.track === "shadow" ? "mirrored" : "of traffic"}`)),
      el("div", { class: "row small" },
        badge(`${t.ready}/${t.desired ?? "?"} ready`, t.ready > 0 ? "ready" : "drift"),
        el("span", {}, "drift ", t.drift ? badge(t.drift) : badge("no report", "muted")),
        el("span", {}, "quality ", t.quality ? badge(t.quality) : badge("no labels", "muted")),
        t.live_macro_f1 !== null && t.live_macro_f1 !== undefined ? el("span", {}, `live macro-F1 ${fmt(t.live_macro_f1)}`) : null),
      el("div", { class: "kpis" },
        el("div", { class: "kpi" }, el("div", { class: "label" }, "requests / s"), el("div", { class: "value" }, fmt(now.rps, 2))),
        el("div", { class: "kpi" }, el("div", { class: "label" }, "error rate"), el("div", { class: "value" }, pct(now.error_rate))),
        el("div", { class: "kpi" }, el("div", { class: "label" }, "p50 latency"), el("div", { class: "value" }, now.p50_ms == null ? "–" : `${fmt(now.p50_ms, 2)} ms`)),
        el("div", { class: "kpi" }, el("div", { class: "label" }, "p99 latency"), el("div", { class: "value" }, now.p99_ms == null ? "–" : `${fmt(now.p99_ms, 2)} ms`))),
      el("h4", { class: "small muted" }, "requests / s"), spark("rps", "Requests per second", COLOURS.stable),
      el("h4", { class: "small muted" }, "error rate"), spark("error_rate", "Error rate (%)", COLOURS.drift, 100),
      el("h4", { class: "small muted" }, "latency p50 / p99 (ms)"), latency || el("p", { class: "muted small" }, "–"));
  }

  function classMix(mix) {
    const out = [el("h2", {}, "Predicted classes over time")];
    if (!mix) { out.push(el("p", { class: "muted" }, "No prediction log configured (KS_CONSOLE_EVENTS_SOURCE).")); return out; }
    const tracks = Object.entries(mix.tracks || {});
    if (!tracks.length) { out.push(el("p", { class: "muted" }, `No predictions logged in the last ${mix.hours.length} hours.`)); return out; }
    for (const [track, byLabel] of tracks) {
      const labels = Object.keys(byLabel).sort();
      const stacks = labels.map((name, i) => ({ name, colour: COLOURS[name] || PALETTE[i % PALETTE.length], values: byLabel[name] }));
      out.push(el("div", { class: "card wide" }, el("h3", {}, badge(track, `track-${track}`), " predicted classes per hour"),
        legend(stacks.map((s) => [s.name, s.colour])),
        stackedBars({ buckets: mix.hours, stacks, label: `Predicted classes per hour of the ${track} track, last ${mix.hours.length} hours` })));
    }
    return out;
  }

  async function overview() {
    const data = await getJSON(q("/api/overview"));
    const c = content();
    c.replaceChildren();
    const served = data.tracks.filter((t) => t.track !== "shadow" && t.weight !== null && t.weight !== undefined);
    const mirrored = data.tracks.filter((t) => t.track === "shadow");
    c.append(el("h2", {}, "Traffic split"));
    if (served.length) {
      const parts = served.map((t) => ({ name: `${t.track} v${t.model_version ?? "?"}`, value: t.weight, colour: COLOURS[t.track] || "#999" }));
      c.append(splitBar(parts, `Traffic split in ${data.environment}: ` + served.map((t) => `${t.track} version ${t.model_version} ${t.weight} %`).join(", ")),
        legend(parts.map((p) => [`${p.name}: ${p.value} %`, p.colour])));
    } else {
      c.append(el("p", { class: "muted" }, "No track with a known share."));
    }
    for (const t of mirrored) c.append(el("p", { class: "small" }, badge("shadow", "track-shadow"), ` version ${t.model_version} gets a copy of ${t.weight ?? "?"} % of the requests (answers only logged)`));
    const r = data.rollout;
    const rolloutBox = el("div", { class: "card wide", "aria-label": "rollout" }, el("h3", {}, "Rollout"));
    if (r.in_progress && r.latest) {
      rolloutBox.append(el("p", {}, badge(r.latest.decision), ` version ${r.latest.version}`, r.latest.step ? ` at ${r.latest.step}` : "",
        r.latest.step_index ? ` (step ${r.latest.step_index})` : "", `: ${r.latest.reason || ""}`, el("span", { class: "muted small" }, ` ${when(r.latest.at)}`)));
    } else if (r.lock) {
      rolloutBox.append(el("p", {}, `A rollout of version ${r.lock.version} holds ${data.environment} (phase ${r.lock.phase}, since ${when(r.lock.started_at)}).`));
    } else {
      rolloutBox.append(el("p", { class: "muted" }, r.latest ? `No rollout in progress; the last decision: ${r.latest.decision} of version ${r.latest.version} (${when(r.latest.at)}).` : "No rollout in progress."));
    }
    c.append(rolloutBox);
    c.append(el("h2", {}, "Tracks"), el("p", { class: "muted small" }, `Measured from ${data.metrics_source}.`));
    c.append(el("div", { class: "grid" }, data.tracks.length ? data.tracks.map(trackCard) : [el("p", {}, "No predictor found in this environment.")]));
    const d = data.latest_drift;
    c.append(el("h2", {}, "Latest drift report"), d ? el("p", {}, badge(d.verdict), ` ${when(d.generated_at)}, ${d.records} records `,
      el("a", { href: `/drift/reports/${encodeURIComponent(d.run_id)}` }, "open the report")) : el("p", { class: "muted" }, "No drift report yet."));
    c.append(...classMix(data.class_mix));
    if (data.class_mix_error) c.append(el("p", { class: "error" }, data.class_mix_error));
  }

  async function models() {
    const data = await getJSON("/api/models");
    const c = content();
    c.replaceChildren();
    if (!data.configured) { c.append(el("p", {}, "No MLflow tracking server configured (KS_CONSOLE_TRACKING_URI or MLFLOW_TRACKING_URI).")); return; }
    if (!data.versions.length) { c.append(el("p", {}, `No version of ${data.registered_model} is registered yet.`)); return; }
    const ordered = [...data.versions].reverse();
    const liveSeries = ["stable", "canary", "shadow"].map((track) => ({ name: `live ${track}`, colour: COLOURS[track],
      points: ordered.map((v) => ({ x: Number(v.version), y: v.live[track] ? v.live[track].macro_f1 : null })) }))
      .filter((s) => s.points.some((p) => p.y !== null));
    c.append(el("h2", {}, `Macro-F1 of ${data.registered_model} by version`),
      legend([["holdout", "#10243e"], ...liveSeries.map((s) => [s.name, s.colour])]),
      lineChart({ series: [{ name: "holdout", colour: "#10243e", points: ordered.map((v) => ({ x: Number(v.version), y: v.metrics.macro_f1 ?? null })) }, ...liveSeries],
        width: 640, height: 140, label: "Holdout macro-F1 of each registered version, and live macro-F1 where labels exist", kind: "macro-f1",
        yMin: null, marks: true, xFormat: (x) => `version ${x}` }));
    const rows = data.versions.map((v) => [
      el("strong", {}, v.version),
      el("span", {}, v.aliases.length ? v.aliases.map((a) => badge(a, "alias")) : el("span", { class: "muted" }, "–")),
      when(v.created_at),
      el("div", {}, badge(v.gate.decision || "no gate", v.gate.decision || "muted"), el("div", { class: "small" }, v.gate.reason || "")),
      num(fmt(v.metrics.macro_f1)), num(fmt(v.metrics.accuracy)), num(fmt(v.metrics.ece)),
      el("span", {}, Object.entries(v.live).map(([track, l]) => el("div", { class: "small" }, `${track}: ${fmt(l.macro_f1)} `, badge(l.verdict || "–", l.verdict || "muted"), ` (${l.labelled ?? 0} labels)`))),
      el("span", {}, el("a", { href: v.links.version, target: "_blank", rel: "noopener" }, "version"),
        v.links.run ? [" · ", el("a", { href: v.links.run, target: "_blank", rel: "noopener" }, "run")] : null)]);
    c.append(el("h2", {}, "Versions"), table(`Versions of ${data.registered_model}, newest first (MLflow ${data.mlflow_ui})`,
      ["version", "aliases", "registered", "gate decision and reason", "holdout macro-F1", "accuracy", "ECE", "live macro-F1", "MLflow"], rows));
  }

  function checksList(checks) {
    const entries = Object.entries(checks || {});
    if (!entries.length) return el("span", { class: "muted" }, "–");
    return el("ul", { class: "checks" }, entries.map(([name, c]) => el("li", {}, badge(c.status || "–", c.status === "pass" ? "ok" : c.status === "fail" ? "drift" : "muted"),
      ` ${name}: ${fmt(c.value)} (threshold ${fmt(c.threshold)}${c.p_value_adjusted != null ? `, p ${fmt(c.p_value_adjusted)}` : ""})`)));
  }

  function actionsCard(data) {
    const box = el("div", { class: "card wide" }, el("h3", {}, "Actions"));
    const s = state.session;
    if (!s.actions_enabled) { box.append(el("p", { class: "muted" }, "This console is read-only (no token configured).")); return box; }
    if (!data.available_actions.length) { box.append(el("p", { class: "muted" }, "No rollout command is configured (KS_CONSOLE_START_COMMAND, …).")); return box; }
    if (!s.signed_in) { box.append(el("p", {}, el("a", { href: "/login?next=/rollouts" }, "Sign in"), " to start, promote or roll back.")); return box; }
    const out = el("p", { role: "status", class: "small" });
    const run = async (action, payload) => {
      try {
        const r = await postJSON(`/api/rollouts/${action}`, { environment: state.env, ...payload });
        out.textContent = `${action} started (${r.id}); its output: ${r.log}`;
      } catch (e) { out.textContent = `${action} refused: ${e.message}`; }
    };
    if (data.available_actions.includes("start")) {
      const version = el("input", { type: "number", min: "1", id: "start-version", "aria-label": "version to roll out", style: "width:7rem" });
      box.append(el("div", { class: "row" }, el("label", { for: "start-version" }, "Roll out version"), version,
        el("button", { type: "button", onclick: () => run("start", { version: version.value }) }, "Start")));
    }
    const row = el("div", { class: "row" });
    if (data.available_actions.includes("promote")) row.append(el("button", { type: "button", class: "secondary", onclick: () => run("promote", {}) }, "Promote the candidate"));
    if (data.available_actions.includes("rollback")) row.append(el("button", { type: "button", class: "danger", onclick: () => run("rollback", {}) }, "Roll back"));
    box.append(row, out);
    return box;
  }

  async function rollouts() {
    const data = await getJSON(q("/api/rollouts"));
    const c = content();
    c.replaceChildren();
    c.append(actionsCard(data));
    if (data.lock) c.append(el("p", {}, `In progress: version ${data.lock.version}, phase ${data.lock.phase}, since ${when(data.lock.started_at)} (${data.lock.owner || ""}).`));
    if (!data.decisions.length) { c.append(el("p", { class: "muted" }, `No rollout decision recorded in ${data.environment} yet.`)); return; }
    c.append(el("h2", {}, "Timeline"), legend([["started", COLOURS.stable], ["advance / promoted", COLOURS.ok], ["hold", COLOURS.warn], ["roll back", COLOURS.drift]]),
      timeline(data.decisions, `Rollout decisions in ${data.environment} over time, one row per version`));
    const rows = [...data.decisions].reverse().map((d) => [when(d.at), d.version, d.step ? `${d.step}${d.step_index ? ` (${d.step_index})` : ""}` : "–",
      badge(d.decision), el("span", { class: "small" }, d.reason || ""), checksList(d.checks), el("span", { class: "muted small" }, d.source)]);
    c.append(el("h2", {}, "Decisions"), table("Every decision, newest first, with each check's value and threshold",
      ["time", "version", "step", "decision", "reason", "checks", "recorded in"], rows));
  }

  async function drift() {
    const data = await getJSON(q("/api/drift"));
    const c = content();
    c.replaceChildren();
    if (!data.reports.length) { c.append(el("p", { class: "muted" }, data.configured ? `No drift report for ${data.environment} yet.` : "No drift report directory configured (KS_CONSOLE_DRIFT_DIRS).")); return; }
    for (const group of data.trends) {
      const card = el("section", { class: "card wide", "aria-label": `version ${group.model_version} ${group.track}` },
        el("h2", {}, `Version ${group.model_version} · `, badge(group.track, `track-${group.track}`)),
        el("div", { class: "row small" }, "verdicts: ", group.verdicts.map((v) => el("a", { href: `/drift/reports/${encodeURIComponent(v.run_id)}`, title: when(v.at) }, badge(v.verdict)))));
      const grid = el("div", { class: "grid" });
      for (const s of group.signals) {
        const points = s.points.map((p) => ({ x: new Date(p.at).getTime(), y: p.value, verdict: p.verdict, at: p.at }));
        grid.append(el("div", {}, el("h3", { class: "small" }, `${s.name} `, el("span", { class: "muted" }, `(${s.statistic})`)),
          lineChart({ series: [{ name: s.name, colour: COLOURS.stable, points }], width: 300, height: 84, kind: "drift-signal",
            xFormat: (t) => when(t / 1000).slice(5, 16),
            label: `${s.name} of version ${group.model_version} ${group.track} over ${points.length} reports; warn at ${fmt(s.threshold_warn)}, drift at ${fmt(s.threshold_drift)}`,
            thresholds: [{ y: s.threshold_warn, kind: "warn" }, { y: s.threshold_drift, kind: "drift" }] })));
      }
      card.append(grid);
      c.append(card);
    }
    const latest = data.reports[0];
    const steps = [...(latest.next_steps || []).map((s) => ["", s]),
      ...latest.groups.flatMap((g) => (g.next_steps || []).map((s) => [`v${g.model_version} ${g.track}: `, s]))];
    if (steps.length) {
      const say = (s) => (typeof s === "string" ? s : s.text || s.action || s.message || JSON.stringify(s));
      c.prepend(el("section", { class: "card wide", "aria-label": "next steps" }, el("h2", {}, "Next steps (latest report)"),
        el("ul", {}, steps.map(([where, s]) => el("li", {}, where, say(s))))));
    }
    const rows = data.reports.map((r) => [when(r.generated_at), badge(r.verdict), num(r.records),
      el("span", { class: "small" }, r.groups.map((g) => el("div", {}, `v${g.model_version} ${g.track}: `, badge(g.verdict)))),
      r.quality ? badge(r.quality.verdict) : el("span", { class: "muted" }, "–"),
      el("a", { href: `/drift/reports/${encodeURIComponent(r.run_id)}` }, "view")]);
    c.append(el("h2", {}, "Reports"), table("Drift reports, newest first", ["generated", "verdict", "records", "groups", "live quality", "report"], rows));
  }

  async function tryIt() {
    const overviewData = await getJSON(q("/api/overview"));
    const c = content();
    c.replaceChildren();
    const tracks = overviewData.tracks.filter((t) => t.ready > 0);
    const track = el("select", { id: "track", name: "track" }, tracks.map((t) => el("option", { value: t.track }, `${t.track} (version ${t.model_version})`)));
    const text = el("textarea", { id: "text", name: "text", maxlength: "5000", required: true }, "");
    const result = el("div", { id: "result", "aria-live": "polite" });
    const form = el("form", { class: "card try", id: "try-form" },
      el("label", { for: "text" }, "Text"), text,
      el("div", { class: "controls" }, el("label", {}, "Track ", track), el("button", { type: "submit" }, "Classify")), result);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      result.replaceChildren(el("p", { class: "muted" }, "…"));
      try {
        const r = await postJSON("/api/predict", { environment: state.env, track: track.value, text: text.value });
        result.replaceChildren(
          el("p", {}, "Label ", el("strong", { id: "label" }, r.label), ` · version ${r.model_version} · ${r.environment}/${r.track}`),
          el("p", { class: "small" }, "Prediction id ", el("code", { id: "prediction-id" }, r.prediction_id)),
          probabilityBars(r.probabilities, `Class probabilities: ${Object.entries(r.probabilities).map(([k, v]) => `${k} ${pct(v)}`).join(", ")}`),
          feedbackForm(r));
      } catch (e) { result.replaceChildren(el("p", { class: "error", role: "alert" }, e.message)); }
    });
    c.append(tracks.length ? form : el("p", {}, `No ready predictor in ${state.env}.`));
  }

  function feedbackForm(prediction) {
    const s = state.session;
    const box = el("div", { class: "feedback" }, el("h3", {}, "This is wrong"));
    if (!s.actions_enabled) { box.append(el("p", { class: "muted small" }, "Feedback needs the console token; this console is read-only.")); return box; }
    if (!s.signed_in) { box.append(el("p", { class: "small" }, el("a", { href: "/login?next=/try" }, "Sign in"), " to send the right label.")); return box; }
    const classes = Object.keys(prediction.probabilities).filter((k) => k !== prediction.label);
    const label = el("select", { id: "right-label" }, classes.map((k) => el("option", { value: k }, k)));
    const out = el("p", { role: "status", class: "small", id: "feedback-status" });
    box.append(el("div", { class: "row" }, el("label", { for: "right-label" }, "The right label"), label,
      el("button", { type: "button", id: "send-feedback", onclick: async () => {
        try {
          await postJSON("/api/feedback", { environment: prediction.environment, track: prediction.track, prediction_id: prediction.prediction_id, label: label.value });
          out.textContent = `Thanks: ${prediction.prediction_id} labelled ${label.value}.`;
        } catch (e) { out.textContent = `Not sent: ${e.message}`; }
      } }, "Send feedback")), out);
    return box;
  }

  const PAGES = { overview, models, rollouts, drift, try: tryIt };

  async function load() {
    const page = document.body.dataset.page;
    const render = PAGES[page];
    if (!render) return;
    try {
      await render();
      status("");
      content().dataset.loading = "false";
      content().dataset.loaded = String(Date.now());
    } catch (e) {
      status(`Could not load this page's data: ${e.message}`);
      content().dataset.loading = "false";
    }
  }

  async function start() {
    try {
      state.session = await getJSON("/api/environments");
    } catch (e) { status(`Could not reach the console: ${e.message}`); return; }
    const picker = document.getElementById("environment");
    const params = new URLSearchParams(location.search);
    const envs = state.session.environments;
    state.env = envs.includes(params.get("environment")) ? params.get("environment") : envs[0];
    if (picker) {
      picker.replaceChildren(...envs.map((e) => el("option", { value: e, selected: e === state.env }, e)));
      picker.addEventListener("change", () => {
        state.env = picker.value;
        history.replaceState(null, "", `${location.pathname}?environment=${encodeURIComponent(state.env)}`);
        load();
      });
    }
    await load();
    if (document.body.dataset.page === "overview") state.timer = setInterval(load, 10000);
  }

  if (document.body.dataset.page !== "login") start();
})();
