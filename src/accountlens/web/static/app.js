// The accountlens dashboard: plain JS over the REST API; plotly is served locally (no CDN).
"use strict";

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function fillTable(table, rows, columns, rowClass) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  columns.forEach((c) => { const th = document.createElement("th"); th.textContent = c.replaceAll("_", " "); head.appendChild(th); });
  const body = table.createTBody();
  if (!rows.length) { body.insertRow().insertCell().textContent = "none"; return; }
  rows.forEach((row) => {
    const tr = body.insertRow();
    if (rowClass) tr.className = rowClass(row);
    columns.forEach((c) => { const td = tr.insertCell(); td.textContent = row[c] ?? ""; if (c === "raw") td.className = "raw"; });
  });
}

function bar(element, labels, values, title) {
  if (!window.Plotly) return;
  Plotly.react(element, [{ type: "bar", x: values, y: labels, orientation: "h", marker: { color: "#3b6fd8" } }],
    { margin: { l: 190, r: 10, t: 10, b: 30 }, xaxis: { title: { text: title } }, yaxis: { autorange: "reversed" } },
    { displayModeBar: false, responsive: true });
}

const CARDS = ["accounts", "users", "events", "automation_events", "memberships", "org_units",
  "subscriptions", "outcomes", "unattributed", "quarantined", "last_event_at"];

async function refreshStatus() {
  const status = await getJSON("/api/v1/status");
  document.getElementById("workspace").textContent = `workspace: ${status.workspace}`;
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  document.getElementById("cards").replaceChildren(...CARDS.map((key) => {
    const card = document.createElement("div");
    card.className = "card"; card.dataset.key = key;
    card.innerHTML = '<div class="value"></div><div class="label"></div>';
    card.querySelector(".value").textContent = status[key] ?? "–";
    card.querySelector(".label").textContent = key.replaceAll("_", " ");
    return card;
  }));
  const attribution = Object.entries(status.attribution).map(([rule, events]) => ({ rule, events }));
  fillTable(document.getElementById("attribution"), attribution, ["rule", "events"]);
  const quarantine = await getJSON("/api/v1/quarantine?limit=50");
  fillTable(document.getElementById("quarantine"), quarantine, ["quarantine_id", "reason", "source", "raw"]);
}

async function refreshAnalyses() {
  const bottlenecks = await getJSON("/api/v1/analyses/handoffs?view=bottlenecks&limit=10&min_handoffs=3");
  bar("bottleneck-chart", bottlenecks.map((r) => `${r.from_actor} → ${r.to_actor}`),
    bottlenecks.map((r) => r.median_latency_hours), "median latency (hours)");
  fillTable(document.getElementById("bottlenecks"), bottlenecks,
    ["rank", "from_actor", "to_actor", "handoffs", "latency_ratio", "stall_rate", "most_affected_accounts"]);
  const champions = await getJSON("/api/v1/analyses/champions?limit=12");
  fillTable(document.getElementById("champions"), champions,
    ["account_id", "champion", "role", "share_of_activity", "status", "days_since_seen", "risk"],
    (r) => `risk-${r.risk}`);
  const sequences = await getJSON("/api/v1/analyses/sequences?outcome=renewal&limit=10");
  fillTable(document.getElementById("sequences"), sequences,
    ["pattern", "outcome_cases", "pattern_cases", "confidence", "lift"]);
  const ttv = await getJSON("/api/v1/analyses/paths?view=ttv&limit=20");
  bar("ttv-chart", ttv.map((r) => r.role), ttv.map((r) => r.median_ttv_days), "median days to first value");
  const collaboration = await getJSON("/api/v1/analyses/collaboration?limit=12");
  fillTable(document.getElementById("collaboration"), collaboration,
    ["group", "handoffs", "collaborators", "cross_department_share", "most_connected_user", "top_user_share"]);
  const stalls = await getJSON("/api/v1/analyses/handoffs?view=stalls&limit=10");
  fillTable(document.getElementById("stalls"), stalls, ["account_id", "object_id", "waiting_after", "last_event_at"]);
}

async function refresh() {
  await refreshStatus();
  await refreshAnalyses();
}

refresh().catch((err) => { document.getElementById("updated").textContent = String(err); });
setInterval(() => refreshStatus().catch(() => {}), 5000);
