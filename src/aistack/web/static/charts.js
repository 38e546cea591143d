// Small SVG charts (no external library): line charts, bar charts and a layered DAG for lineage.
"use strict";
const COLORS = ["#4fb3ff", "#3fb950", "#d29922", "#f85149", "#c297ff", "#56d4dd", "#ff9bce"];
const NS = "http://www.w3.org/2000/svg";

// svgEl builds chart nodes from data, so it is safe by construction: only the tags and
// attribute names below (no href, no on*, no style beyond a height, nothing that loads a URL),
// each value checked against its kind and set with setAttribute; text is textContent. A name
// or tag not listed is a bug in the caller (an Error); a value that fails its check (NaN from
// bad data, a colour that is no colour) leaves the attribute unset. The static check in
// tests/unit/core/test_core_dashboard_escaping.py holds every call to these names.
const SVG_TAGS = new Set(["svg", "g", "line", "path", "rect", "text", "title"]);
const SVG_VALUE = {
  num: v => typeof v === "number" && isFinite(v) ? String(v) : null,
  box: v => Array.isArray(v) && v.length === 4 && v.every(x => typeof x === "number" && isFinite(x)) ? v.join(" ") : null,
  path: v => typeof v === "string" && /^[MLHVZ](?:[\d.eE+-]+(?:,[\d.eE+-]+)?)?(?: [MLHVZ](?:[\d.eE+-]+(?:,[\d.eE+-]+)?)?)*$/.test(v) ? v : null,
  paint: v => typeof v === "string" && /^(#[0-9a-f]{3,8}|[a-z]{3,20})$/i.test(v) ? v : null,
  dash: v => typeof v === "string" && /^(none|\d+(\.\d+)?( \d+(\.\d+)?)*)$/.test(v) ? v : null,
  anchor: v => ["start", "middle", "end"].includes(v) ? v : null,
  classes: v => typeof v === "string" ? v.split(/\s+/).filter(c => /^[A-Za-z][\w-]*$/.test(c)).join(" ") : null,
  height: v => typeof v === "number" && isFinite(v) && v >= 0 ? `height:${v}px` : null,
};
const SVG_ATTRS = {
  x: "num", y: "num", x1: "num", y1: "num", x2: "num", y2: "num", width: "num", height: "num", rx: "num",
  "stroke-width": "num", viewBox: "box", d: "path", fill: "paint", stroke: "paint",
  "stroke-dasharray": "dash", "text-anchor": "anchor", class: "classes", cssHeight: "height",
};
const SVG_ATTR_NAME = { cssHeight: "style" };  // the one style an SVG may have: its height in px

function svgEl(tag, attrs, text) {
  if (!SVG_TAGS.has(tag)) throw new Error(`svgEl: tag ${tag} is not one charts draw`);
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (!Object.prototype.hasOwnProperty.call(SVG_ATTRS, k)) throw new Error(`svgEl: attribute ${k} is not one charts set`);
    const value = SVG_VALUE[SVG_ATTRS[k]](v);
    if (value !== null) e.setAttribute(SVG_ATTR_NAME[k] || k, value);
  }
  if (text !== undefined) e.textContent = String(text);
  return e;
}

// a series' or bar's colour: "#rgb"/"#rrggbb(aa)" or a plain colour name, else the palette's
function safeColor(c, i) {
  return typeof c === "string" && /^(#[0-9a-f]{3,8}|[a-z]{3,20})$/i.test(c) ? c : COLORS[i % COLORS.length];
}

function niceMax(v) {
  if (!isFinite(v) || v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmtNum(v) {
  if (!isFinite(v)) return String(v);
  if (v !== 0 && Math.abs(v) < 0.01) return String(+v.toPrecision(2));  // 0.0005, not "0.00050"
  // the suffix is chosen by the rounded number: 999,960 is "1.0M", never "1000.0k"
  const plain = Math.abs(v) < 10 ? v.toFixed(2).replace(/\.?0+$/, "") : v.toFixed(0);
  if (Math.abs(+plain) < 1000) return plain;
  for (const [div, suffix] of [[1e3, "k"], [1e6, "M"], [1e9, "B"], [1e12, "T"]]) {
    const txt = (v / div).toFixed(1);
    if (Math.abs(+txt) < 1000) return txt + suffix;
  }
  // FLOPs and token counts run to 1e24: past trillions, powers of ten (the 'M' suffix read 8.4e22 as "84…984.0M")
  return v.toExponential(2).replace("e+", "e");
}

// a y axis from 0: its top and its ticks, at steps of 1, 2, 2.5 or 5 × 10^k, at most 5 of them
// (quarters of 250 MiB read "63" and "188"). Counts (integer: GPUs, CPUs, jobs) tick at whole
// numbers only (a chart of 2 GPUs read 0, 0.5, 1, 1.5, 2).
function yAxis(max, integer, top) {
  let want = top || max;
  if (!(want > 0) || !isFinite(want)) want = 1;
  if (integer) want = Math.max(1, Math.ceil(want));
  const p = Math.pow(10, Math.floor(Math.log10(want / 5)));
  const step = [1, 2, 2.5, 5, 10].map(m => m * p).find(st => st * 5 >= want * (1 - 1e-12) && (!integer || Number.isInteger(st)))
    || Math.max(1, Math.ceil(want / 5));
  const n = Math.max(1, Math.ceil(want / step - 1e-9));
  const ticks = [];
  for (let i = 0; i <= n; i++) ticks.push(+(i * step).toPrecision(12));
  return { yMax: ticks[n], ticks };
}

// series: [{name, points: [[x, y], ...]}]; opts: {yLabel, xFormat(x) -> str, yMax (the top),
// yAtLeast (a top no lower than this: 100 for a percent axis that may pass 100), integer}
function lineChart(container, series, opts) {
  opts = opts || {};
  const W = 600, H = 220, L = 52, R = 10, T = opts.yLabel ? 24 : 10, B = 28;  // the y label sits above the top tick
  const svg = svgEl("svg", { class: "chart", viewBox: [0, 0, W, H] });
  const xs = series.flatMap(s => s.points.map(p => p[0]));
  const ys = series.flatMap(s => s.points.map(p => p[1])).filter(v => v !== null && isFinite(v));
  if (!xs.length) { container.innerHTML = '<p class="muted">no data yet</p>'; return; }
  const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  const { yMax, ticks } = yAxis(Math.max(...ys, 0, opts.yAtLeast || 0), opts.integer, opts.yMax);
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = y => T + (1 - y / yMax) * (H - T - B);
  for (const y of ticks) {
    svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: sy(y), y2: sy(y), stroke: "#2a333d" }));
    svg.appendChild(svgEl("text", { x: L - 6, y: sy(y) + 4, "text-anchor": "end" }, fmtNum(y)));
  }
  const xf = opts.xFormat || (x => fmtNum(x));
  for (let i = 0; i <= 4; i++) {
    const x = x0 + (x1 - x0) * i / 4;
    svg.appendChild(svgEl("text", { x: sx(x), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, xf(x)));
  }
  if (opts.yLabel) svg.appendChild(svgEl("text", { x: 4, y: 12 }, opts.yLabel));
  series.forEach((s, i) => {
    const pts = s.points.filter(p => p[1] !== null && isFinite(p[1]));
    if (!pts.length) return;
    const d = pts.map((p, j) => (j ? "L" : "M") + sx(p[0]).toFixed(1) + "," + sy(p[1]).toFixed(1)).join(" ");
    svg.appendChild(svgEl("path", { d, fill: "none", stroke: safeColor(s.color, i), "stroke-width": 2 }));
  });
  container.innerHTML = "";
  container.appendChild(svg);
  const legend = document.createElement("div");
  legend.className = "legend";
  // built as nodes, not HTML: a series name is text, and a colour that is no plain colour is not used
  series.forEach((s, i) => {
    const item = document.createElement("span"), swatch = document.createElement("i");
    swatch.style.background = safeColor(s.color, i);
    item.append(swatch, String(s.name));
    legend.appendChild(item);
  });
  container.appendChild(legend);
}

// bars: [{label, value, color?}]; opts: {yLabel, unit, integer}
function barChart(container, bars, opts) {
  opts = opts || {};
  const W = 600, H = 220, L = 52, R = 10, T = opts.yLabel ? 24 : 10, B = 40;
  const svg = svgEl("svg", { class: "chart", viewBox: [0, 0, W, H] });
  if (!bars.length) { container.innerHTML = '<p class="muted">no data yet</p>'; return; }
  const { yMax, ticks } = yAxis(Math.max(...bars.map(b => b.value), 0), opts.integer);
  const bw = (W - L - R) / bars.length;
  for (const y of ticks) {
    const py = T + (1 - y / yMax) * (H - T - B);
    svg.appendChild(svgEl("line", { x1: L, x2: W - R, y1: py, y2: py, stroke: "#2a333d" }));
    svg.appendChild(svgEl("text", { x: L - 6, y: py + 4, "text-anchor": "end" }, fmtNum(y)));
  }
  bars.forEach((b, i) => {
    const h = (b.value / yMax) * (H - T - B);
    svg.appendChild(svgEl("rect", { x: L + i * bw + bw * 0.15, y: T + (H - T - B) - h, width: bw * 0.7, height: h, fill: safeColor(b.color, i) }));
    svg.appendChild(svgEl("text", { x: L + i * bw + bw / 2, y: H - 22, "text-anchor": "middle" }, b.label));
    svg.appendChild(svgEl("text", { x: L + i * bw + bw / 2, y: H - 8, "text-anchor": "middle" }, fmtNum(b.value) + (opts.unit || "")));
  });
  if (opts.yLabel) svg.appendChild(svgEl("text", { x: 4, y: 12 }, opts.yLabel));
  container.innerHTML = "";
  container.appendChild(svg);
}

const DAG_LABEL = 26;  // characters that fit a 180 px box
const DAG_FOLD = 8;    // more leaf nodes than this on one side of a node: DAG_KEEP shown, rest folded
const DAG_KEEP = 5;
const KIND_COLORS = { dataset: "#3fb950", job: "#4fb3ff", run: "#d29922", model: "#c297ff",
                      file: "#56d4dd", webdata: "#ff9bce", service: "#f0883e", more: "#8b98a5" };
const PLURALS = { file: "files", dataset: "datasets", job: "jobs", run: "runs", model: "models", webdata: "web-data runs",
                  service: "services" };

// A label that fits a box: a long hex digest (a file's sha256:…, a 32-hex run id) keeps its
// first 8 digits; then a label still too long keeps its start and end around one "…".
function dagLabel(text, max) {
  max = max || DAG_LABEL;
  const s = String(text).replace(/(?:[a-z0-9]{3,16}:)?([0-9a-f]{8})[0-9a-f]{24,}/g, "$1…");
  if (s.length <= max) return s;
  const tail = Math.ceil((max - 1) / 2);
  return s.slice(0, max - 1 - tail) + "…" + s.slice(-tail);
}

// Many leaves of one kind on one side of a node (a web-data run reads thousands of files) are
// folded: DAG_KEEP of them are shown and the others become one "… N more files" box. A leaf is
// a node with that one edge only, so folding never cuts a path through the graph; dataset
// versions are never folded (the version whose lineage is shown is one).
function dagFold(nodes, edges) {
  const byId = {}, deg = {};
  nodes.forEach(n => { byId[n.id] = n; deg[n.id] = 0; });
  edges.forEach(([a, b]) => { deg[a] = (deg[a] || 0) + 1; deg[b] = (deg[b] || 0) + 1; });
  const groups = {};  // "in|out" + hub + kind -> leaf ids
  edges.forEach(([a, b]) => {
    for (const [leaf, hub, side] of [[a, b, "in"], [b, a, "out"]]) {
      const n = byId[leaf];
      if (deg[leaf] !== 1 || !n || n.kind === "dataset" || !byId[hub]) continue;
      const key = JSON.stringify([side, hub, n.kind]);
      (groups[key] = groups[key] || []).push(leaf);
    }
  });
  const folded = new Set(), extraNodes = [], extraEdges = [];
  Object.entries(groups).forEach(([key, list]) => {
    if (list.length <= DAG_FOLD) return;
    const [side, hub, kind] = JSON.parse(key);
    const rest = list.sort().slice(DAG_KEEP);
    rest.forEach(id => folded.add(id));
    const what = PLURALS[kind] || `${kind} nodes`;
    const id = `more:${side}:${kind}:${hub}`;
    const names = rest.slice(0, 20).map(x => byId[x].label || x);
    extraNodes.push({ id, kind: "more", label: `… ${rest.length.toLocaleString("en-US")} more ${what}`,
                      title: `${rest.length} more ${what}:\n${names.join("\n")}${rest.length > 20 ? "\n…" : ""}` });
    extraEdges.push(side === "out" ? [hub, id] : [id, hub]);
  });
  if (!folded.size) return [nodes, edges];
  return [nodes.filter(n => !folded.has(n.id)).concat(extraNodes),
          edges.filter(([a, b]) => !folded.has(a) && !folded.has(b)).concat(extraEdges)];
}

// nodes: [{id, label, kind, title?}], edges: [[from, to]] — drawn left to right by depth.
function dagChart(container, nodes, edges) {
  [nodes, edges] = dagFold(nodes, edges);
  const depth = {};
  const incoming = {};
  nodes.forEach(n => { depth[n.id] = 0; incoming[n.id] = []; });
  edges.forEach(([a, b]) => { if (incoming[b]) incoming[b].push(a); });
  for (let it = 0; it < nodes.length; it++) {
    let moved = false;
    edges.forEach(([a, b]) => { if (depth[a] !== undefined && depth[b] !== undefined && depth[b] < depth[a] + 1) { depth[b] = depth[a] + 1; moved = true; } });
    if (!moved) break;
  }
  const cols = {};
  nodes.forEach(n => { (cols[depth[n.id]] = cols[depth[n.id]] || []).push(n); });
  const ncol = Object.keys(cols).length || 1;
  const maxRows = Math.max(1, ...Object.values(cols).map(c => c.length));
  const W = Math.max(600, ncol * 220), H = Math.max(120, maxRows * 60 + 20);
  const svg = svgEl("svg", { class: "chart", viewBox: [0, 0, W, H], cssHeight: H });
  const pos = {};
  Object.entries(cols).forEach(([d, list]) => {
    list.forEach((n, i) => { pos[n.id] = [20 + d * 210, 20 + i * 60]; });
  });
  edges.forEach(([a, b]) => {
    if (!pos[a] || !pos[b]) return;
    svg.appendChild(svgEl("line", { x1: pos[a][0] + 180, y1: pos[a][1] + 18, x2: pos[b][0], y2: pos[b][1] + 18, stroke: "#8b98a5" }));
  });
  nodes.forEach(n => {
    const [x, y] = pos[n.id];
    const g = svgEl("g", { class: `dag-node dag-${n.kind}` });
    g.appendChild(svgEl("title", {}, n.title || n.id));  // the full id on hover
    g.appendChild(svgEl("rect", { x, y, width: 180, height: 36, rx: 6, fill: "#0b0f13", stroke: KIND_COLORS[n.kind] || "#8b98a5",
                                  "stroke-dasharray": n.kind === "more" ? "4 3" : "none" }));
    g.appendChild(svgEl("text", { x: x + 8, y: y + 22, class: "dag-label" }, dagLabel(n.label || n.id)));
    svg.appendChild(g);
  });
  container.innerHTML = "";
  container.appendChild(svg);
}
