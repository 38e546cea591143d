// aistack dashboard: hash-routed pages over the REST API (the token travels in a cookie).
"use strict";
const API = "/api/v1";
const $ = sel => document.querySelector(sel);
const esc = s => String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
let timers = [];
let routeGen = 0;  // bumped on every page change: answers to the page left behind are dropped

async function api(path, opts) {
  opts = opts || {};
  const gen = routeGen;
  let r;
  try {
    r = await fetch(API + path, {
      method: opts.method || "GET",
      headers: opts.body ? { "content-type": "application/json" } : {},
      body: opts.body ? JSON.stringify(opts.body) : undefined,
      credentials: "same-origin",
    });
  } catch (e) {
    throw new Error(`cannot reach the aistack server at ${location.origin} (is it running? start it with \`aistack up --detach\`)`);
  }
  // logged out (or the token changed): log in again and come back to this page
  if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search + location.hash); throw new Error("unauthorized"); }
  const data = r.headers.get("content-type", "").includes("json") ? await r.json() : await r.text();
  // the user went to another page meanwhile: never settle, so the old page's code writes nothing
  // into the new page's elements (both have a #kpis, a #list ...)
  if (gen !== routeGen) return new Promise(() => {});
  if (!r.ok) {
    const err = new Error((data && data.message) ? data.message + (data.hint ? ` (${data.hint})` : "") : `HTTP ${r.status}`);
    err.status = r.status; err.data = data;
    throw err;
  }
  return data;
}

// a failed refresh shows why above the page (server stopped, job gone …) and clears once one
// succeeds; a 404 (what the page shows is gone) stops that refresh
function showStatus(msg) {
  let s = $("#status");
  if (!s && msg) {  // a page shell from before the status line: add it
    s = document.createElement("p"); s.id = "status"; s.className = "error status"; $("#main").before(s);
  }
  if (s) { s.textContent = msg || ""; s.hidden = !msg; }
}
function every(ms, fn) {
  let id = null;
  const tick = async () => {
    try { await fn(); showStatus(""); }
    catch (e) { showStatus(e.message); if (e.status === 404 && id !== null) clearInterval(id); }
  };
  tick();
  id = setInterval(tick, ms);
  timers.push(id);
}
// API times are UTC: with "Z" or an offset ("+00:00"), or naive (older rows): read naive as UTC
function parseTime(t) { return new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(t) ? t : t + "Z"); }
function fmtTime(t) { if (!t) return "-"; return parseTime(t).toLocaleString(); }
function ago(t) {
  if (!t) return "-";
  const d = parseTime(t);
  let s = (Date.now() - d.getTime()) / 1000; const fut = s < 0; s = Math.abs(s);
  const txt = span(s, 0, false);
  return fut ? `in ${txt}` : `${txt} ago`;
}
// seconds in the largest unit they reach once rounded: 3599 s is "1.0 h", never "60.0 min"
// (secDigits: decimals for seconds; trim: "1 h" rather than "1.0 h")
function span(s, secDigits, trim) {
  const units = [[1, "s", 60, secDigits], [60, "min", 60, 1], [3600, "h", 24, 1], [86400, "d", Infinity, 1]];
  for (const [div, name, next, digits] of units) {
    const txt = (s / div).toFixed(digits);
    if (+txt < next) return `${trim ? +txt : txt} ${name}`;
  }
}
function bytes(n) { if (n === null || n === undefined) return "-"; const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0; while (Math.abs(+n.toFixed(i ? 1 : 0)) >= 1024 && i < 4) { n /= 1024; i++; } return `${n.toFixed(i ? 1 : 0)} ${u[i]}`; }
function usd(v) { if (v === null || v === undefined || !isFinite(v)) return "-"; v = Number(v); return "$" + (v !== 0 && Math.abs(v) < 0.01 ? v.toPrecision(2) : v.toLocaleString(undefined, { maximumFractionDigits: 2 })); }
function stateCell(s) { return `<span class="state ${esc(s)}">${esc(s)}</span>`; }
function table(cols, rows, rowAttrs) {
  return `<table><thead><tr>${cols.map(c => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>` +
    (rows.length ? rows.map((r, i) => `<tr ${rowAttrs ? rowAttrs(i) : ""}>${r.map(c => `<td>${c}</td>`).join("")}</tr>`).join("") : `<tr><td colspan="${cols.length}" class="muted">none</td></tr>`) +
    "</tbody></table>";
}
// a 404 is "not available" only for an endpoint this server lacks; a missing service, model … says so
function unavailable(e) { return `<p class="muted">${e.status === 404 && /^no such endpoint/.test(e.message) ? "not available on this server" : esc(e.message)}</p>`; }
const plural = (n, one, many) => `${n} ${n === 1 ? one : (many || one + "s")}`;
// a job's resources as text: "2 GPUs (H100) · 8 CPUs · 32GB memory × 2 nodes"
function fmtResources(r) {
  r = r || {};
  const gpus = r.gpus || 0, nodes = r.nodes || 1;
  return plural(gpus, "GPU") + (gpus && r.gpu_type ? ` (${r.gpu_type})` : "") + " · " + plural(r.cpus || 1, "CPU") +
    (r.memory ? ` · ${r.memory} memory` : "") + (nodes > 1 ? ` × ${nodes} nodes` : "");
}
// a job's devices per node, by device number: "vm: GPU ids 2, 3; CPU cores 0, 1" ("GPUs 2"
// read as a count)
function fmtDevices(d) {
  const parts = Object.entries(d || {}).map(([node, a]) => {
    a = a || {};
    const ids = (label, xs) => xs && xs.length ? `${label} ${xs.join(", ")}` : "";
    const mem = a.memory_mb ? `${bytes(a.memory_mb * 1048576)} memory` : "";
    return `${node}: ${[ids("GPU ids", a.gpus), ids("CPU cores", a.cpus), mem].filter(Boolean).join("; ") || "-"}`;
  });
  return parts.length ? parts.join(" | ") : "-";
}
function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "-";
  return span(s, 1, true);
}

// ---------------------------------------------------------------- cluster
async function pageCluster(main) {
  main.innerHTML = `<h2>Cluster</h2><div class="kpis" id="kpis"></div>
    <div class="grid"><div class="card"><h3>Utilization over time</h3><div id="util"></div></div>
    <div class="card"><h3>Allocation</h3><div id="alloc"></div></div></div>
    <div class="card" style="margin-top:14px"><h3>Nodes and devices</h3><div id="nodes"></div></div>`;
  every(3000, async () => {
    const [c, jobs, hist] = await Promise.all([api("/cluster"), api("/jobs?all=false"), api("/cluster/history").catch(() => [])]);
    const t = c.totals;
    const q = jobs.filter(j => j.state === "QUEUED").length, r = jobs.filter(j => j.state === "RUNNING").length;
    $("#kpis").innerHTML = [
      [`${t.gpus_allocated}/${t.gpus}`, "GPUs allocated"], [`${t.cpus_allocated}/${t.cpus}`, "CPUs allocated"],
      [r, "jobs running"], [q, "jobs queued"], [c.executor, "executor"], [c.scheduler.policy || "-", "scheduling policy"],
    ].map(([v, l]) => `<div class="kpi"><b>${esc(v)}</b><span>${esc(l)}</span></div>`).join("");
    const rows = [];
    c.nodes.forEach(n => {
      rows.push([esc(n.name), esc(`${n.cpus} CPUs`), "", `${(n.memory_mb / 1024).toFixed(1)} GiB`, esc(Object.values(n.cpu_jobs).filter((v, i, a) => a.indexOf(v) === i).join(", ") || "-"), n.cpu_percent !== null && n.cpu_percent !== undefined ? `${n.cpu_percent.toFixed(0)} %` : "-"]);
      n.gpus.forEach(g => rows.push(["", esc(`GPU ${g.index}`), esc(g.name), (g.memory_mb ? `${(g.memory_mb / 1024).toFixed(0)} GiB` : "unknown"), g.job ? `<a href="#/jobs/${esc(encodeURIComponent(g.job))}">${esc(g.job)}</a>` : "-", g.util_percent !== null && g.util_percent !== undefined ? `${g.util_percent.toFixed(0)} %` : "-"]));
    });
    $("#nodes").innerHTML = table(["node", "device", "model", "memory", "allocated to", "utilization"], rows);
    barChart($("#alloc"), [
      { label: "GPUs used", value: t.gpus_allocated }, { label: "GPUs free", value: t.gpus - t.gpus_allocated },
      { label: "CPUs used", value: t.cpus_allocated }, { label: "CPUs free", value: t.cpus - t.cpus_allocated },
    ], { yLabel: "devices", integer: true });
    if (hist.length) {
      const x = h => parseTime(h.t).getTime() / 1000;
      lineChart($("#util"), [
        { name: "CPU %", points: hist.map(h => [x(h), h.cpu_percent]) },
        { name: "memory %", points: hist.map(h => [x(h), 100 * h.memory_used_mb / h.memory_total_mb]) },
        { name: "GPU %", points: hist.map(h => [x(h), h.gpu_percent]) },
        { name: "allocated CPUs %", points: hist.map(h => [x(h), h.cpus_allocated_percent]) },
      ], { yLabel: "percent", yMax: 100, xFormat: v => new Date(v * 1000).toLocaleTimeString() });
    } else $("#util").innerHTML = '<p class="muted">collecting samples…</p>';
  });
}

// ---------------------------------------------------------------- jobs
async function pageJobs(main) {
  main.innerHTML = `<h2>Jobs</h2>
    <div class="card"><h3>Submit a job</h3>
    <form class="inline" id="submit-form">
      <label>name<input name="name" value="my-job"></label>
      <label>project<input name="project" value="default"></label>
      <label style="grid-column: span 2">command<input name="command" id="submit-command" placeholder="python train.py" required></label>
      <label>GPUs<input name="gpus" type="number" min="0" value="0"></label>
      <label>CPUs<input name="cpus" type="number" min="1" value="1"></label>
      <label>memory<input name="memory" placeholder="e.g. 4GB"></label>
      <label>priority<input name="priority" type="number" value="0"></label>
      <label>max runtime<input name="max_runtime" placeholder="e.g. 30m"></label>
      <label>retries<input name="retries" type="number" min="0" value="0"></label>
      <button type="submit" id="submit-btn">Submit</button>
    </form><p id="submit-result"></p></div>
    <div class="card" style="margin-top:14px"><h3>Queue and history</h3><div id="jobs"></div></div>`;
  $("#submit-form").addEventListener("submit", async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const spec = { name: f.get("name"), project: f.get("project"), command: f.get("command"), priority: +f.get("priority"), retries: +f.get("retries"),
      resources: { gpus: +f.get("gpus"), cpus: +f.get("cpus") } };
    if (f.get("memory")) spec.resources.memory = f.get("memory");
    if (f.get("max_runtime")) spec.max_runtime = f.get("max_runtime");
    try {
      const j = await api("/jobs", { method: "POST", body: spec });
      $("#submit-result").innerHTML = `<span class="ok">submitted <a href="#/jobs/${esc(encodeURIComponent(j.id))}" id="submitted-link">${esc(j.id)}</a></span>`;
    } catch (e) { $("#submit-result").innerHTML = `<span class="error">${esc(e.message)}</span>`; }
  });
  every(2000, async () => {
    const jobs = await api("/jobs?limit=200");
    $("#jobs").innerHTML = table(["id", "name", "project", "state", "resources", "submitted", "pending reason / result", "est. start"],
      jobs.map(j => [`<a href="#/jobs/${esc(encodeURIComponent(j.id))}">${esc(j.id)}</a>`, esc(j.name), esc(j.project), stateCell(j.state),
        esc(fmtResources(j.resources)), ago(j.submitted_at),
        esc(j.state === "QUEUED" ? j.pending_reason : (j.failure_reason || j.stop_reason || (j.exit_code !== null ? "exit " + j.exit_code : ""))),
        j.estimated_start ? ago(j.estimated_start) : "-"]),
      i => `class="click job-row" data-job="${esc(jobs[i].id)}"`);
  });
  // a row opens its job; no inline onclick: esc() is undone by the HTML parser before JavaScript reads it
  $("#jobs").addEventListener("click", ev => {
    const tr = ev.target.closest("tr[data-job]");
    if (tr && !ev.target.closest("a")) location.hash = "#/jobs/" + encodeURIComponent(tr.dataset.job);
  });
}

async function pageJob(main, id) {
  const jid = encodeURIComponent(id);  // from the URL: never let it change the API path
  main.innerHTML = `<h2>Job <code>${esc(id)}</code></h2><div class="kpis" id="kpis"></div>
    <div class="grid"><div class="card"><h3>Details</h3><div id="details"></div><p><button class="danger" id="cancel-btn" hidden>Cancel</button> <span id="cancel-result"></span></p></div>
    <div class="card"><h3>Resource use</h3><div id="usage"></div><div id="usage-mem"></div></div></div>
    <div class="card" style="margin-top:14px"><h3>Logs (live)</h3><pre class="log" id="logs"></pre></div>
    <div class="card" style="margin-top:14px"><h3>Events</h3><div id="events"></div></div>`;
  let offset = 0, attempt = null;
  $("#cancel-btn").onclick = async () => {
    try { const j = await api(`/jobs/${jid}/cancel`, { method: "POST" }); $("#cancel-result").textContent = j.state; }
    catch (e) { $("#cancel-result").innerHTML = `<span class="error">${esc(e.message)}</span>`; }
  };
  every(1500, async () => {
    const j = await api(`/jobs/${jid}`);
    $("#cancel-btn").hidden = ["SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT"].includes(j.state);
    $("#kpis").innerHTML = `<div class="kpi"><b>${stateCell(j.state)}</b><span>state</span></div>` +
      [[j.exit_code ?? "-", "exit code"], [j.attempt, "attempt"], [ago(j.started_at), "started"]]
      .map(([v, l]) => `<div class="kpi"><b>${esc(v)}</b><span>${esc(l)}</span></div>`).join("");
    $("#details").innerHTML = table(["field", "value"], [
      ["name", esc(j.name)], ["project / user", esc(j.project + " / " + j.user)], ["command", `<code>${esc(j.command)}</code>`],
      ["resources", esc(fmtResources(j.resources))], ["devices", esc(fmtDevices(j.devices))],
      ["priority / retries left", esc(`${j.priority} / ${j.retries_left}`)], ["max runtime", esc(fmtDuration(j.max_runtime_s))],
      ["inputs", esc((j.inputs || []).join(", ") || "-")],
      ["pending reason", esc(j.pending_reason || "-")], ["estimated start", j.estimated_start ? fmtTime(j.estimated_start) : "-"],
      ["failure reason", esc(j.failure_reason || "-")], ["stop reason", esc(j.stop_reason || "-")], ["MLflow run", j.mlflow_run_id ? `<a target="_blank" href="/mlflow/#/runs/${esc(encodeURIComponent(j.mlflow_run_id))}">${esc(j.mlflow_run_id)}</a>` : "-"],
      ["submitted / finished", esc(fmtTime(j.submitted_at) + " / " + fmtTime(j.finished_at))],
    ]);
    if (attempt !== null && attempt !== j.attempt) { offset = 0; $("#logs").textContent = ""; }
    attempt = j.attempt;
    const chunk = await api(`/jobs/${jid}/logs?offset=${encodeURIComponent(offset)}`);
    if (chunk.text) { $("#logs").textContent += chunk.text; $("#logs").scrollTop = 1e9; }
    offset = chunk.next_offset;
    const ev = await api(`/jobs/${jid}/events`);
    $("#events").innerHTML = table(["time", "event", "message"], ev.map(e => [fmtTime(e.t), esc(e.kind), esc(e.message)]));
    const s = await api(`/usage/samples?job_id=${jid}`);
    if (s.length) {
      const x = r => parseTime(r.t).getTime() / 1000;
      const xFormat = v => new Date(v * 1000).toLocaleTimeString();
      // percentages and memory on axes of their own (one axis read 300 MB as 300 %); a process
      // on several cores passes 100 % CPU, so that axis grows past 100 then
      const gpu = s.some(r => r.gpu_util !== null && r.gpu_util !== undefined);  // no GPU: no empty "GPU %" line
      lineChart($("#usage"), [{ name: "CPU %", points: s.map(r => [x(r), r.cpu_percent]) }].concat(gpu ? [{ name: "GPU %", points: s.map(r => [x(r), r.gpu_util]) }] : []),
        { yLabel: "percent", yAtLeast: 100, xFormat });
      lineChart($("#usage-mem"), [{ name: "resident memory (RSS), MiB", points: s.map(r => [x(r), r.rss_mb]) }], { yLabel: "MiB", xFormat });
    } else { $("#usage").innerHTML = '<p class="muted">no samples yet</p>'; $("#usage-mem").innerHTML = ""; }
  });
}

// ---------------------------------------------------------------- datasets
async function pageDatasets(main, name) {
  main.innerHTML = `<h2>Datasets</h2><div class="grid"><div class="card"><h3>Datasets</h3><div id="list"></div></div>
    <div class="card"><h3 id="detail-title">Versions</h3><div id="versions"><p class="muted">pick a dataset</p></div></div></div>
    <div class="card" style="margin-top:14px"><h3>Diff</h3><form class="inline" id="diff-form"><label>from<input name="a" value="1"></label><label>to<input name="b" value="latest"></label><button>Diff</button></form><div id="diff"></div></div>
    <div class="card" style="margin-top:14px"><h3>Lineage</h3><div id="lineage"><p class="muted">pick a version</p></div></div>`;
  try {
    const ds = await api("/datasets");
    $("#list").innerHTML = table(["name", "versions", "latest", "updated"], ds.map(d => [`<a href="#/datasets/${esc(encodeURIComponent(d.name))}">${esc(d.name)}</a>`, esc(d.versions), esc(d.latest), ago(d.updated_at || d.created_at)]));
  } catch (e) { $("#list").innerHTML = unavailable(e); return; }
  if (!name) return;
  const d = await api(`/datasets/${encodeURIComponent(name)}`);
  $("#detail-title").textContent = `Versions of ${name}`;
  $("#versions").innerHTML = table(["version", "files", "size", "tags", "message", "created"], d.versions.map(v =>
    [`<a href="#" class="lineage-link" data-v="${esc(v.version)}">v${esc(v.version)}</a>`, esc(v.files), bytes(v.bytes), esc(v.tags.join(", ")), esc(v.message || ""), ago(v.created_at)]));
  const showLineage = async v => {
    const g = await api(`/datasets/${encodeURIComponent(name)}/versions/${encodeURIComponent(v)}/lineage`);
    dagChart($("#lineage"), g.nodes.map(n => ({ id: n.id, label: n.name, kind: n.kind })), g.edges.map(e => [e.src, e.dst]));
  };
  document.querySelectorAll(".lineage-link").forEach(a => a.onclick = ev => { ev.preventDefault(); showLineage(a.dataset.v); });
  // the newest version's lineage (the API lists versions newest first)
  if (d.versions.length) showLineage(Math.max(...d.versions.map(v => v.version)));
  $("#diff-form").onsubmit = async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      const r = await api(`/datasets/${encodeURIComponent(name)}/diff?a=${encodeURIComponent(f.get("a"))}&b=${encodeURIComponent(f.get("b"))}`);
      const rows = [...r.added.map(x => ["added", esc(x.path), bytes(x.new_size)]), ...r.removed.map(x => ["removed", esc(x.path), bytes(x.old_size)]), ...r.changed.map(x => ["changed", esc(x.path), `${bytes(x.old_size)} → ${bytes(x.new_size)}`])];
      $("#diff").innerHTML = `<p>${esc(r.a)} → ${esc(r.b)}: +${bytes(r.bytes_added)}, −${bytes(r.bytes_removed)}, ~${bytes(r.bytes_changed)}; ${esc(r.unchanged)} files unchanged</p>` + table(["change", "path", "size"], rows);
    } catch (e) { $("#diff").innerHTML = `<p class="error">${esc(e.message)}</p>`; }
  };
}

// ---------------------------------------------------------------- models
async function pageModels(main, name) {
  main.innerHTML = `<h2>Models</h2><div class="grid"><div class="card"><h3>Registry</h3><div id="list"></div></div>
    <div class="card"><h3 id="mtitle">Versions</h3><div id="versions"><p class="muted">pick a model</p></div></div></div>
    <div class="card" style="margin-top:14px"><h3>Promote (with a gate)</h3>
    <form class="inline" id="promote-form"><label>version<input name="version" type="number" min="1" value="1"></label><label>to alias<input name="to" value="production"></label>
    <label style="grid-column: span 2">require (comma separated)<input name="require" placeholder="val_loss<3.2"></label><button id="promote-btn">Promote</button></form>
    <div id="promote-result"></div></div>
    <div class="card" style="margin-top:14px"><h3>Lineage</h3><div id="lineage"><p class="muted">pick a model</p></div></div>`;
  $("#promote-form").onsubmit = ev => ev.preventDefault();  // bound for real once the model is loaded
  try {
    const ms = await api("/models");
    $("#list").innerHTML = table(["name", "latest", "aliases"], ms.map(m => [`<a href="#/models/${esc(encodeURIComponent(m.name))}">${esc(m.name)}</a>`, esc(m.latest_version ?? "-"), esc(Object.entries(m.aliases).map(([a, v]) => `${a}→v${v}`).join(", "))]));
  } catch (e) { $("#list").innerHTML = unavailable(e); return; }
  if (!name) { $("#promote-form").style.display = "none"; $("#promote-result").innerHTML = '<p class="muted">pick a model</p>'; return; }
  const m = await api(`/models/${encodeURIComponent(name)}`);
  $("#mtitle").textContent = `Versions of ${name}`;
  $("#versions").innerHTML = table(["version", "aliases", "run", "created"], m.versions.map(v => [esc(`v${v.version}`), esc(v.aliases.join(", ")),
    v.run_id ? `<a target="_blank" href="/mlflow/#/runs/${esc(encodeURIComponent(v.run_id))}">${esc(v.run_id.slice(0, 12))}</a>` : "-", v.created_ms ? new Date(v.created_ms).toLocaleString() : "-"]));
  if (m.versions.length) {
    const latest = Math.max(...m.versions.map(v => v.version));
    document.querySelector("#promote-form [name=version]").value = latest;
    try {
      const l = await api(`/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(latest)}/lineage`);
      const nodes = [{ id: "model", label: `${name} v${latest}`, kind: "model" }], edges = [];
      if (l.run) { nodes.push({ id: "run", label: "run " + (l.run.id || l.run.run_id || "").slice(0, 10) + (l.run.metrics && l.run.metrics.loss !== undefined ? ` (loss ${Number(l.run.metrics.loss).toFixed(2)})` : ""), kind: "run" }); edges.push(["run", "model"]); }
      if (l.job) { nodes.push({ id: "job", label: "job " + (l.job.job_id || l.job.id || ""), kind: "job" }); edges.push(["job", "run"]); }
      (l.datasets || []).forEach((d, i) => { nodes.push({ id: "d" + i, label: d.ref || d.name || JSON.stringify(d), kind: "dataset" }); edges.push(["d" + i, l.job ? "job" : "run"]); });
      dagChart($("#lineage"), nodes, edges);
    } catch (e) { $("#lineage").innerHTML = unavailable(e); }
  }
  $("#promote-form").onsubmit = async ev => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    const require = (f.get("require") || "").split(",").map(s => s.trim()).filter(Boolean);
    try {
      const r = await api(`/models/${encodeURIComponent(name)}/promote`, { method: "POST", body: { version: +f.get("version"), to: f.get("to"), require } });
      $("#promote-result").innerHTML = `<p class="ok" id="promote-ok">promoted v${esc(r.version)} to ${esc(r.alias)}</p>` + table(["condition", "actual", "passed"], r.checks.map(c => [esc(c.condition), esc(c.actual ?? "-"), c.passed ? "yes" : "no"]));
    } catch (e) { $("#promote-result").innerHTML = `<p class="error" id="promote-refused">refused: ${esc(e.message)}</p>`; }
  };
}

// ---------------------------------------------------------------- services
async function pageServices(main, name) {
  main.innerHTML = `<h2>Services</h2><div class="card"><div id="list"></div></div><div id="detail"></div>`;
  const ms = (v, none = "-") => v === null || v === undefined ? none : Number(v).toFixed(1) + " ms";
  every(3000, async () => {
    let svcs;
    try { svcs = await api("/services"); } catch (e) { $("#list").innerHTML = unavailable(e); return; }
    $("#list").innerHTML = table(["name", "model", "status", "replicas ready / desired", "QPS", "p99", "URL"], svcs.map(s => [`<a href="#/services/${esc(encodeURIComponent(s.name))}">${esc(s.name)}</a>`,
      esc(`${s.model} (${s.model_uri || ""})`), esc(s.status), esc(`${s.ready_replicas ?? "?"} / ${s.desired_replicas ?? "?"}`),
      (s.qps ?? 0).toFixed(2) + " req/s", esc(ms(s.p99_ms)), esc(s.url || "")]));
    if (!name) return;
    try {
      const s = await api(`/services/${encodeURIComponent(name)}`);
      const m = s.metrics || {};
      const win = m.window_s ? ` (last ${m.window_s} s)` : "";
      const a = s.autoscaler || {};
      const dec = [...(a.decisions || [])];
      if (a.last) dec.push(a.last);
      $("#detail").innerHTML = `<div class="kpis" style="margin-top:14px">${[[`${s.ready_replicas}/${s.desired_replicas}`, `replicas (min ${s.min_replicas}, max ${s.max_replicas})`],
        // the latencies (and QPS) are over the status's window (metrics.window_s): "-" after it
        // with no request read as broken
        [(m.qps ?? 0).toFixed(2) + " req/s", `QPS${win}`], [ms(m.p50_ms, "idle"), `p50 latency${win}`], [ms(m.p99_ms, "idle"), `p99 latency${win}`], [m.errors_total ?? 0, "errors"],
        [(m.mean_batch_size ?? 0).toFixed(2), "mean batch size"], [m.requests_total ?? 0, "requests"]]
        .map(([v, l]) => `<div class="kpi"><b>${esc(v)}</b><span>${esc(l)}</span></div>`).join("")}</div>
        <div class="grid"><div class="card"><h3>Replicas</h3>${table(["replica", "state", "model", "URL", "in flight", "served", "batch size (mean)"], (s.replicas || []).map(r => [esc(r.id), esc(r.state), esc(r.model), esc(r.url || ""), esc(r.outstanding ?? 0), esc(r.served ?? 0),
          r.batches && r.batches.completions ? r.batches.completions.mean_batch_size.toFixed(2) : "-"]))}</div>
        <div class="card"><h3>Autoscaler decisions</h3>${table(["from → to", "action", "reason"], dec.slice(-15).reverse().map(d => [esc(`${d.current} → ${d.desired}`), esc(d.action || ""), esc(d.reason || "")]))}</div></div>
        <div class="card" style="margin-top:14px"><h3>Events</h3>${table(["time", "kind", "message"], (s.events || []).slice(-20).reverse().map(e => [new Date(e.t * 1000).toLocaleTimeString(), esc(e.kind), esc(e.message)]))}</div>`;
    } catch (e) { $("#detail").innerHTML = unavailable(e); }
  });
}

// ---------------------------------------------------------------- costs
async function pageCosts(main) {
  main.innerHTML = `<h2>Costs</h2><div class="kpis" id="kpis"></div>
    <div class="grid"><div class="card"><h3>Spend by project (cloud on-demand prices)</h3><div id="byproj"></div></div>
    <div class="card"><h3>Cloud vs on-premises for this usage</h3><div id="compare"></div></div></div>
    <div class="card" style="margin-top:14px"><h3>Projects: usage and budgets</h3><div id="projects"></div></div>
    <div class="card" style="margin-top:14px"><h3>Users</h3><div id="users"></div></div>
    <div class="card" style="margin-top:14px"><h3>Break-even: buy vs rent (8 × H100, cumulative cost)</h3><div id="breakeven"></div><p id="advice" class="muted"></p><p id="advice-tco" class="muted"></p></div>`;
  try {
    const r = await api("/cost/report");
    const t = r.total || {};
    $("#kpis").innerHTML = [[(t.gpu_hours ?? 0).toFixed(3) + " GPU-h", "GPU time", "gpu"], [(t.cpu_hours ?? 0).toFixed(3) + " CPU-h", "CPU time", "cpu"],
      [usd(r.cloud_on_demand_usd ?? t.cost_usd), "cost at cloud on-demand prices", "cloud"], [usd(r.onprem_usd), "cost on-premises", "onprem"]]
      .map(([v, l, id]) => `<div class="kpi"><b id="cost-${esc(id)}">${esc(v)}</b><span>${esc(l)}</span></div>`).join("");
    const projects = r.by_project || [];
    barChart($("#byproj"), projects.map(p => ({ label: p.key, value: p.cost_usd || 0 })), { yLabel: "USD" });
    barChart($("#compare"), [{ label: "cloud", value: r.cloud_on_demand_usd || 0 }, { label: "on-prem", value: r.onprem_usd || 0 }], { yLabel: "USD" });
    $("#projects").innerHTML = table(["project", "jobs", "GPU-h", "CPU-h", "useful GPU-h", "idle GPU-h", "cost", "budget", "month spend", "status"], projects.map(p => {
      const b = (r.budgets || []).find(x => x.project === p.key);
      return [esc(p.key), esc(p.jobs), p.gpu_hours.toFixed(3), p.cpu_hours.toFixed(3), p.useful_gpu_hours.toFixed(3), p.idle_gpu_hours.toFixed(3), usd(p.cost_usd),
        b ? usd(b.monthly_budget_usd) : "-", b ? usd(b.spend_usd) : "-", b ? esc(b.status) : "-"];
    }));
    $("#users").innerHTML = table(["user", "jobs", "GPU-h", "CPU-h", "useful GPU-h", "idle GPU-h", "cost"], (r.by_user || []).map(u =>
      [esc(u.key), esc(u.jobs), u.gpu_hours.toFixed(3), u.cpu_hours.toFixed(3), u.useful_gpu_hours.toFixed(3), u.idle_gpu_hours.toFixed(3), usd(u.cost_usd)]));
    $("#advice").textContent = (r.recommendation || "") + (r.notes && r.notes.length ? " " + r.notes.join(" ") : "");
  } catch (e) { $("#kpis").innerHTML = unavailable(e); }
  try {
    const tco = await api("/plan/tco", { method: "POST", body: { gpu: "H100", gpus: 8, utilization: 0.7, horizon_months: 36 } });
    const sc = tco.scenarios || [];
    lineChart($("#breakeven"), sc.map(s => ({ name: s.name, points: (s.cumulative_usd || s.cumulative || []).map((v, i) => [i, v]) })), { yLabel: "USD", xFormat: v => `month ${v.toFixed(0)}` });
    if (tco.breakeven_month !== undefined) $("#advice-tco").textContent = `Buying 8 × ${tco.gpu} (${tco.server}) vs renting ${tco.instance} on demand at 70 % utilization breaks even at month ${tco.breakeven_month != null ? tco.breakeven_month.toFixed(1) : "never"}; buying wins above ${(100 * tco.breakeven_utilization).toFixed(0)} % utilization.`;
  } catch (e) { $("#breakeven").innerHTML = unavailable(e); }
}

// ---------------------------------------------------------------- planner
async function pagePlanner(main) {
  main.innerHTML = `<h2>Planner</h2><div class="grid">
    <div class="card"><h3>Train</h3><form class="inline" id="f-train"><label>parameters<input name="params" value="7e9"></label><label>active params (MoE)<input name="active_params"></label>
      <label>tokens<input name="tokens" value="2e12"></label><label>GPU<input name="gpu" value="H100"></label><label>GPUs<input name="gpus" value="512"></label><label>or days<input name="days"></label><button>Plan</button></form><div id="r-train"></div></div>
    <div class="card"><h3>Serve</h3><form class="inline" id="f-serve"><label>parameters<input name="params" value="70e9"></label><label>GPU<input name="gpu" value="H100"></label>
      <label>context<input name="context" value="8192"></label><label>concurrency<input name="concurrency" value="16"></label><label>precision<input name="precision" value="bf16"></label><button>Plan</button></form><div id="r-serve"></div></div>
    <div class="card"><h3>TCO</h3><form class="inline" id="f-tco"><label>GPU<input name="gpu" value="H100"></label><label>GPUs<input name="gpus" value="8"></label>
      <label>utilization (0–1)<input name="utilization" value="0.7"></label><label>months<input name="horizon_months" value="36"></label><button>Plan</button></form><div id="r-tco"></div><div id="c-tco"></div></div></div>`;
  const num = v => (v === "" || v === null) ? undefined : (isNaN(+v) ? v : +v);
  const bind = (form, path, out, after) => $(form).onsubmit = async ev => {
    ev.preventDefault();
    const body = {};
    for (const [k, v] of new FormData(ev.target).entries()) { const x = num(v); if (x !== undefined) body[k] = x; }
    try {
      const r = await api(path, { method: "POST", body });
      // whole numbers below a million exactly (the context typed as 8192 read "8.2k")
      const shown = v => typeof v !== "number" ? v : Number.isInteger(v) && Math.abs(v) < 1e6 ? v.toLocaleString("en-US") : fmtNum(v);
      $(out).innerHTML = table(["quantity", "value"], Object.entries(r).filter(([k, v]) => typeof v !== "object").map(([k, v]) => [esc(k), esc(shown(v))]));
      if (after) after(r);
    } catch (e) { $(out).innerHTML = `<p class="error">${esc(e.message)}</p>`; }
  };
  bind("#f-train", "/plan/train", "#r-train");
  bind("#f-serve", "/plan/serve", "#r-serve");
  bind("#f-tco", "/plan/tco", "#r-tco", r => lineChart($("#c-tco"), (r.scenarios || []).map(s => ({ name: s.name, points: (s.cumulative_usd || s.cumulative || []).map((v, i) => [i, v]) })), { yLabel: "USD", xFormat: v => `month ${v.toFixed(0)}` }));
}

// ---------------------------------------------------------------- router
const PAGES = { cluster: pageCluster, jobs: pageJobs, datasets: pageDatasets, models: pageModels, services: pageServices, costs: pageCosts, planner: pagePlanner };
async function route() {
  timers.forEach(clearInterval); timers = []; routeGen++; showStatus("");
  const [page, arg] = (location.hash.replace(/^#\/?/, "") || "cluster").split("/");
  document.querySelectorAll("nav a[data-page]").forEach(a => a.classList.toggle("active", a.dataset.page === page));
  const main = $("#main");
  // names in links are encoded (an MLflow model may be called "50%"): a malformed one is kept as is
  const name = arg ? (() => { try { return decodeURIComponent(arg); } catch (e) { return arg; } })() : undefined;
  try {
    if (page === "jobs" && arg) await pageJob(main, name);
    else await (PAGES[page] || pageCluster)(main, name);
  } catch (e) { main.insertAdjacentHTML("beforeend", `<p class="error">${esc(e.message)}</p>`); }
}
window.addEventListener("hashchange", route);
route();
