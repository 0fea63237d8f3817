// The accountlens dashboard: plain JS over the REST API, no CDN, works offline.
"use strict";

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function fillTable(table, rows, columns) {
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  columns.forEach((c) => { const th = document.createElement("th"); th.textContent = c; head.appendChild(th); });
  const body = table.createTBody();
  if (!rows.length) { body.insertRow().insertCell().textContent = "none"; return; }
  rows.forEach((row) => {
    const tr = body.insertRow();
    columns.forEach((c) => { const td = tr.insertCell(); td.textContent = row[c] ?? ""; if (c === "raw") td.className = "raw"; });
  });
}

const CARDS = ["accounts", "users", "events", "automation_events", "memberships", "org_units",
  "subscriptions", "outcomes", "unattributed", "quarantined", "last_event_at"];

async function refresh() {
  const status = await getJSON("/api/v1/status");
  document.getElementById("workspace").textContent = `workspace: ${status.workspace}`;
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  const cards = document.getElementById("cards");
  cards.replaceChildren(...CARDS.map((key) => {
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

refresh().catch((err) => { document.getElementById("updated").textContent = String(err); });
setInterval(() => refresh().catch(() => {}), 5000);
