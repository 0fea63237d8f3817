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

// The analysis panels come from the server (api/dashboard.py), the one list of what the
// dashboard shows: the background warmer keeps the same analyses computed.
function renderPanels(panels) {
  document.getElementById("panels").replaceChildren(...panels.map((panel) => {
    const section = document.createElement("section");
    section.id = `panel-${panel.id}`;
    const heading = document.createElement("h2");
    heading.append(panel.title);
    if (panel.note) { const note = document.createElement("small"); note.textContent = panel.note; heading.append(" ", note); }
    const asOf = document.createElement("small"); asOf.className = "as-of"; heading.append(" ", asOf);
    section.appendChild(heading);
    if (panel.chart) { const chart = document.createElement("div"); chart.id = `${panel.id}-chart`; chart.className = "chart"; section.appendChild(chart); }
    if (panel.columns.length) { const table = document.createElement("table"); table.id = panel.id; section.appendChild(table); }
    return section;
  }));
}

function analysisPath(panel) {
  const query = new URLSearchParams(Object.entries(panel.params).map(([k, v]) => [k, String(v)]));
  return `/api/v1/analyses/${panel.analysis}?${query}`;
}

async function refreshPanel(panel) {
  const body = await getJSON(analysisPath(panel));
  const rows = body.rows;
  document.querySelector(`#panel-${panel.id} .as-of`).textContent = `as of ${body.as_of}`;
  if (panel.chart) {
    const { labels, value, axis } = panel.chart;
    bar(`${panel.id}-chart`, rows.map((r) => labels.map((c) => r[c]).join(" → ")), rows.map((r) => r[value]), axis);
  }
  if (panel.columns.length) {
    const rowClass = panel.row_class ? (r) => `${panel.row_class}-${r[panel.row_class]}` : undefined;
    fillTable(document.getElementById(panel.id), rows, panel.columns, rowClass);
  }
}

async function refresh() {
  const { panels } = await getJSON("/api/v1/dashboard");
  renderPanels(panels);
  await refreshStatus();
  for (const panel of panels) await refreshPanel(panel);
}

refresh().catch((err) => { document.getElementById("updated").textContent = String(err); });
setInterval(() => refreshStatus().catch(() => {}), 5000);
