// jobtrail dashboard: polls /dashboard/data and renders it; no external requests.
"use strict";
const REFRESH_MS = 5000;
let charts = null;

function text(el, value) { document.getElementById(el).textContent = value; }
function when(s) { return s ? new Date(s * 1000).toISOString().replace("T", " ").slice(0, 19) : "-"; }
function secs(s) { return s == null ? "–" : (s < 1 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(2) + " s"); }
function row(tbody, cells, classes) {
  const tr = document.createElement("tr");
  cells.forEach((c, i) => { const td = document.createElement("td"); td.textContent = c;
    if (classes && classes[i]) td.className = classes[i]; tr.appendChild(td); });
  tbody.appendChild(tr);
}

function renderCharts(series) {
  const width = Math.max(360, document.getElementById("chart-throughput").clientWidth || 480);
  const t = series.t;
  const tp = [t, series.created, series.completed, series.failed];
  const lat = [t, series.p50_s, series.p95_s];
  if (!charts) {
    charts = {
      throughput: new uPlot({ width, height: 220, series: [{}, { label: "submitted", stroke: "#36c" },
        { label: "completed", stroke: "#070" }, { label: "failed", stroke: "#b00" }] },
        tp, document.getElementById("chart-throughput")),
      latency: new uPlot({ width, height: 220, series: [{}, { label: "p50", stroke: "#36c", points: { show: true, size: 6 } },
        { label: "p95", stroke: "#a60", points: { show: true, size: 6 } }] }, lat, document.getElementById("chart-latency")),
    };
  } else {
    charts.throughput.setData(tp);
    charts.latency.setData(lat);
  }
}

function render(d) {
  for (const s of ["pending", "processing", "completed", "failed", "cancelled"]) text("count-" + s, d.jobs_by_status[s] ?? 0);
  text("queue-length", d.queue_length);
  text("latency", secs(d.latency.p50_s) + " / " + secs(d.latency.p95_s));
  text("purged", (d.totals.purged || 0) + " / " + (d.totals.restored || 0));
  text("live-workers", d.workers.filter(w => w.alive).length);
  const events = document.querySelector("#events tbody"); events.replaceChildren();
  for (const e of d.recent_events) {
    const details = Object.entries(e).filter(([k]) => !["event_id", "job_id", "last_job_id", "count", "type", "at", "from", "status"].includes(k))
      .map(([k, v]) => k + "=" + v).join(", ");
    // a purge writes one entry per chunk: job_id is its first job, count how many
    const jobs = e.count > 1 ? e.count + " jobs: " + e.job_id + " … " + e.last_job_id : e.job_id;
    row(events, [when(e.at), jobs, e.type, details], [null, "id", null, null]);
  }
  const redis = document.querySelector("#redis tbody"); redis.replaceChildren();
  for (const [role, r] of Object.entries(d.redis)) {
    row(redis, [role, (r.used_memory / 1048576).toFixed(1) + " MiB" + (r.maxmemory ? " / " + (r.maxmemory / 1048576).toFixed(0) + " MiB" : ""),
      r.maxmemory_policy, r.expired_keys, r.evicted_keys]);
  }
  const runs = document.querySelector("#runs tbody"); runs.replaceChildren();
  for (const r of d.retention_runs) {
    const counts = Object.entries(r.counts || {}).map(([k, v]) => k + "=" + v).join(", ");
    row(runs, [when(r.started_at), r.kind, r.policy || "-", counts, r.user + "@" + r.host, r.outcome]);
  }
  const findings = document.getElementById("findings"); findings.replaceChildren();
  for (const f of d.findings) {
    const li = document.createElement("li"); li.className = "sev-" + f.severity;
    li.textContent = f.severity + " " + f.check + ": " + f.message; findings.appendChild(li);
  }
  const workers = document.getElementById("workers"); workers.replaceChildren();
  for (const w of d.workers) {
    const li = document.createElement("li");
    li.textContent = w.name + " — " + (w.alive ? "alive" : "gone") + ", last heartbeat " + when(w.last_seen) +
      (w.jobs.length ? ", running " + w.jobs.join(", ") : "");
    workers.appendChild(li);
  }
  renderCharts(d.series);
  text("updated", "updated " + when(d.at) + " UTC");
  document.body.dataset.loaded = "true";
}

async function refresh() {
  try {
    const resp = await fetch("/dashboard/data");
    if (!resp.ok) throw new Error((await resp.json()).error?.message || resp.statusText);
    render(await resp.json());
  } catch (err) {
    text("updated", "refresh failed: " + err.message);
  }
}

document.getElementById("trace-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const id = document.getElementById("trace-id").value.trim();
  if (!id) return;
  const resp = await fetch("/jobs/" + encodeURIComponent(id) + "/trace");
  const body = await resp.json();
  const section = document.getElementById("trace-result"); section.hidden = false;
  const tbody = document.querySelector("#trace-timeline tbody"); tbody.replaceChildren();
  if (!resp.ok) { text("trace-fate", "error"); text("trace-verdict", body.error?.message || resp.statusText); return; }
  text("trace-fate", body.fate);
  text("trace-verdict", body.verdict);
  for (const item of body.timeline) row(tbody, [when(item.at), item.source, item.event]);
});

refresh();
setInterval(refresh, REFRESH_MS);
