// `/`: how the product is doing across accounts: activity over time, the AARRR funnel, health,
// ARR and renewals, alerts and data-quality warnings.
import { h, fmt, panel, fill, notes, kpi, table, csvButton, accountLink, link, label, empty } from "../ui.js";
import * as api from "../api.js";
import { chartBox, plot, GRADE_COLORS, COLORS } from "../charts.js";
import { pageHeader, toolbar, asOfControl, facetSelect, filterValues, activeFilters, controlSwitch, grid } from "./common.js";

const FILTERS = ["industry", "region", "plan", "size_band"];
const GRADES = ["healthy", "concerning", "poor", "unknown"];

export default {
  render(ctx) {
    const filters = filterValues(ctx, FILTERS);
    const metricFilters = filters; // metrics take the same keys (as lists; one value here)
    const updated = h("p", { id: "updated", class: "muted" });
    ctx.main.append(
      pageHeader(ctx, "Overview", { subtitle: `Workspace ${ctx.workspace}` }),
      toolbar(asOfControl(ctx), ...FILTERS.map((k) => facetSelect(ctx, k))),
      activeFilters(ctx, FILTERS) || "",
      updated,
    );

    const cards = h("div", { id: "cards", class: "cards", "aria-live": "polite" });
    ctx.main.append(h("section", { class: "kpis", "aria-label": "Key figures" }, cards));
    const activity = panel("Active accounts and users", { wide: true, id: "panel-activity",
      actions: [controlSwitch(ctx, "activity", "grain", "Grain", { fallback: "day" })] });
    const funnel = panel("AARRR funnel", { id: "panel-funnel",
      actions: [controlSwitch(ctx, "funnel", "level", "Level", { key: "funnel_level", fallback: "account", asSelect: true })] });
    const health = panel("Health distribution", { id: "panel-health", description: "Accounts by health grade; open a grade to see its accounts." });
    const renewals = panel("Renewals in the next 90 days", { wide: true, id: "panel-renewals" });
    const alerts = panel("Alerts and data quality", { id: "panel-alerts" });
    const recorded = panel("Alerts", { wide: true, id: "panel-alert-history", description: "The latest alerts of the rules, and whether their webhooks got them." });
    ctx.main.append(grid(activity, funnel, health, alerts, recorded, renewals));

    const grain = ctx.get("grain", "day");
    const funnelLevel = ctx.get("funnel_level", "account");
    const grades = GRADES.map((g) => ctx.query(`grade-${g}`, filters).then((r) => ({ grade: g, count: r.total_rows ?? r.rows.length })));
    const gradeCounts = Promise.all(grades);
    const segments = ctx.query("renewals-by-grade", filters);

    fill(cards, () => Promise.all([ctx.query("kpis", metricFilters), gradeCounts, segments.catch((e) => e)]), ([kpis, counts, seg]) => {
      const row = kpis.rows[0] || {};
      const accounts = counts.reduce((n, c) => n + c.count, 0);
      const total = seg instanceof Error ? null : seg.rows.find((r) => r.segment === "(all)");
      updated.textContent = `As of ${kpis.as_of}`;
      cards.append(
        kpi("Accounts", fmt.int(accounts), { raw: accounts, key: "accounts" }),
        kpi("Active accounts (30 d)", fmt.int(row.active_30d), { raw: row.active_30d, key: "active_accounts", sub: `${fmt.int(row.active_7d)} in 7 days` }),
        kpi("Monthly active users", fmt.int(row.mau), { raw: row.mau, key: "mau" }),
        kpi("ARR", fmt.compact(row.arr), { raw: row.arr, key: "arr", sub: `${fmt.int(row.paying_accounts)} paying accounts` }),
        kpi("ARR up for renewal (90 d)", total ? fmt.compact(total.renewal_arr) : "–", { raw: total ? total.renewal_arr : null, key: "renewal_arr", sub: total ? `${fmt.int(total.renewals)} renewals` : null }),
        kpi("ARR at risk (90 d)", total ? fmt.compact(total.arr_at_risk) : "–", { raw: total ? total.arr_at_risk : null, key: "arr_at_risk", tone: total && total.arr_at_risk > 0 ? "warn" : null,
          sub: total && total.renewal_arr ? `${fmt.pct(total.arr_at_risk / total.renewal_arr)} of it` : null }),
      );
      const n = notes(kpis);
      if (n) cards.after(n);
    }, { signal: ctx.signal });

    fill(activity.body, () => ctx.query("activity", { ...filters, grain }), async (result) => {
      const rows = result.rows;
      if (!rows.length) { activity.body.append(empty("No activity in this window.")); return; }
      const box = chartBox(`Active accounts and active users per ${grain}, ${rows.length} ${grain}s up to ${result.as_of}`);
      activity.body.append(box, notes(result) || "");
      activity.actions.append(csvButton(`activity-${grain}`, () => Promise.resolve(result)));
      const x = rows.map((r) => r.period);
      await plot(box, [
        { type: "scatter", mode: "lines", name: "Active accounts", x, y: rows.map((r) => r.active_accounts), line: { color: COLORS[0], width: 2 } },
        { type: "scatter", mode: "lines", name: "Active users", x, y: rows.map((r) => r.active_users), yaxis: "y2", line: { color: COLORS[1], width: 2 } },
      ], { yaxis: { title: { text: "accounts" }, rangemode: "tozero" }, yaxis2: { title: { text: "users" }, overlaying: "y", side: "right", rangemode: "tozero" },
        xaxis: { type: "date" }, margin: { r: 48 } });
    }, { signal: ctx.signal });

    fill(funnel.body, () => ctx.query("funnel", { ...metricFilters, level: funnelLevel }), async (result) => {
      drawFunnel(funnel, result, funnelLevel);
    }, { signal: ctx.signal });

    fill(health.body, () => gradeCounts, async (counts) => {
      const total = counts.reduce((n, c) => n + c.count, 0);
      const box = chartBox(`Accounts by health grade: ${counts.map((c) => `${c.grade} ${c.count}`).join(", ")}`, { height: 220 });
      const list = h("ul", { class: "grade-list" }, counts.map((c) => h("li", { dataset: { grade: c.grade, count: c.count } },
        h("span", { class: `chip grade-${c.grade}` }, label(c.grade)), " ",
        link("/accounts", `${fmt.int(c.count)} account${c.count === 1 ? "" : "s"}`, { grade: c.grade, ...filters }),
        total ? h("span", { class: "muted" }, ` (${fmt.pct(c.count / total)})`) : "")));
      health.body.append(box, list);
      await plot(box, [{ type: "pie", hole: 0.55, labels: counts.map((c) => label(c.grade)), values: counts.map((c) => c.count),
        marker: { colors: counts.map((c) => GRADE_COLORS[c.grade]) }, sort: false, textinfo: "value", hovertemplate: "%{label}: %{value}<extra></extra>" }],
      { showlegend: false, margin: { l: 8, r: 8, t: 8, b: 8 } });
    }, { signal: ctx.signal });

    fill(renewals.body, () => Promise.all([ctx.query("renewals-due", filters), segments]), async ([due, seg]) => {
      const byGrade = seg.rows.filter((r) => r.segment !== "(all)");
      const key = "segment";
      if (byGrade.length) {
        const known = byGrade.some((r) => r.arr_at_risk !== null && r.arr_at_risk !== undefined);
        const y = byGrade.map((r) => label(r[key]));
        const box = chartBox(known ? "ARR up for renewal by health grade: expected to renew and at risk" : "ARR up for renewal by health grade", { height: 60 + 40 * byGrade.length });
        renewals.body.append(box);
        plot(box, known ? [
          { type: "bar", orientation: "h", name: "Expected to renew", y, x: byGrade.map((r) => r.expected_renewal_arr), marker: { color: "#2b8a3e" } },
          { type: "bar", orientation: "h", name: "At risk", y, x: byGrade.map((r) => r.arr_at_risk), marker: { color: "#c92a2a" } },
        ] : [{ type: "bar", orientation: "h", name: "Renewal ARR", y, x: byGrade.map((r) => r.renewal_arr), marker: { color: byGrade.map((r) => GRADE_COLORS[r[key]] || COLORS[0]) } }],
        { barmode: "stack", xaxis: { title: { text: "ARR" } }, showlegend: known, legend: { orientation: "h", y: -0.35 } });
      }
      const columns = [
        { key: "account_name", label: "Account", cell: (r) => accountLink(r.account_id, r.account_name) },
        { key: "renewal_date", label: "Renews", format: fmt.date },
        { key: "renewal_arr", label: "ARR", numeric: true, format: fmt.money },
        { key: "renewal_probability", label: "Renewal chance", numeric: true, format: fmt.pct },
        { key: "arr_at_risk", label: "At risk", numeric: true, format: fmt.money },
        { key: "health_grade", label: "Health", cell: (r) => h("span", { class: `chip grade-${r.health_grade || "unknown"}` }, label(r.health_grade || "unknown")) },
        { key: "champion_status", label: "Champion", format: fmt.text },
      ];
      const count = due.total_rows ?? due.rows.length;
      renewals.body.append(h("p", {}, `${fmt.int(count)} renewal${count === 1 ? "" : "s"} due; the soonest:`),
        table(due.rows, columns, { caption: "Upcoming renewals", id: "renewals-table" }),
        h("p", {}, link("/analyses/renewals", "All renewals →", filters)), notes(due) || "");
      renewals.actions.append(csvButton("renewals", () => api.allRows("renewals-due", { ...filters, as_of: ctx.get("as_of") })));
    }, { signal: ctx.signal });

    const signalKinds = ["qualification", "expansion", "contraction"];
    fill(alerts.body, () => Promise.all([
      Promise.all(signalKinds.map((k) => ctx.query(`signals-${k}`, filters).then((r) => [k, r.total_rows ?? r.rows.length]).catch(() => [k, null]))),
      api.getJSON("/api/v1/status", {}, { signal: ctx.signal }),
      segments.catch(() => null),
    ]), ([signalCounts, status, seg]) => {
      const items = [];
      for (const [kind, count] of signalCounts) {
        if (count) items.push(h("li", { class: kind === "contraction" ? "warn" : null }, link("/analyses/signals", `${fmt.int(count)} ${kind} signal${count === 1 ? "" : "s"}`, { kind }), " fire now"));
      }
      const poor = seg && seg.rows.find((r) => r.segment === "poor");
      if (poor && poor.renewals) items.push(h("li", { class: "warn" }, `${fmt.int(poor.renewals)} renewal${poor.renewals === 1 ? "" : "s"} due with poor health (${fmt.compact(poor.renewal_arr)} ARR)`));
      const quality = [];
      if (status.disk_full) quality.push(`ingestion paused: ${status.ingest_paused_reason || "the disk is full"}`);
      if (status.loader_error) quality.push(`the loader failed: ${status.loader_error}`);
      if (status.quarantined) quality.push(`${fmt.int(status.quarantined)} events quarantined (invalid; replayable)`);
      if (status.unattributed && status.events) quality.push(`${fmt.int(status.unattributed)} events (${fmt.pct(status.unattributed / status.events)}) not attributed to an account`);
      for (const [warning, counts] of Object.entries(status.ingest_warnings || {})) {
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        quality.push(`${fmt.int(total)} events stored with a warning: ${warning}`);
      }
      alerts.body.append(
        h("h3", {}, "Alerts"), items.length ? h("ul", { class: "alerts" }, items) : empty("No alerts."),
        h("h3", {}, "Data quality"), quality.length ? h("ul", { class: "quality" }, quality.map((q) => h("li", {}, q))) : empty("No data-quality warnings."),
        h("p", { class: "muted" }, `${fmt.int(status.events)} events, last at ${fmt.time(status.last_event_at)} UTC.`),
        h("p", {}, link("/quality", "Data quality →")));
    }, { signal: ctx.signal });
    drawAlerts(ctx, recorded);
  },
};

// The latest recorded alerts (GET /api/v1/alerts, newest first; docs/alerts.md).
const LATEST_ALERTS = 10;
const DELIVERY = { none: "No webhook", pending: "Pending", delivered: "Delivered", failed: "Failed" };
function drawAlerts(ctx, target) {
  fill(target.body, () => api.getJSON("/api/v1/alerts", { limit: LATEST_ALERTS }, { signal: ctx.signal }), (rows) => {
    if (!rows.length) { target.body.append(empty("No alerts.")); return; }
    const columns = [
      { key: "rule", label: "Rule", format: fmt.text },
      { key: "account_id", label: "Account", cell: (r) => (r.account_id === "*" ? "Workspace" : accountLink(r.account_id, r.account_name)) },
      { key: "title", label: "Alert", format: fmt.text },
      { key: "created_at", label: "When", format: fmt.time },
      { key: "state", label: "Delivery", cell: (r) => h("span", { class: `chip delivery-${r.state}` }, DELIVERY[r.state] || label(r.state)) },
    ];
    target.body.append(table(rows, columns, { caption: "Latest alerts", id: "alerts-table" }));
  }, { signal: ctx.signal });
}

function drawFunnel(target, result, level) {
  const rows = result.rows.filter((r) => !String(r.stage).startsWith("referral:"));
  if (!rows.length) { target.body.append(empty("No funnel at this level.")); return; }
  const groupKey = result.columns[0].name !== "stage_order" ? result.columns[0].name : null;
  const stages = [...new Map(rows.map((r) => [r.stage_order, r.stage])).entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s);
  const box = chartBox(`AARRR funnel at ${level} level: subjects reaching each stage`, { height: 300 });
  target.body.append(box);
  let traces;
  if (!groupKey) {
    const reached = stages.map((s) => rows.find((r) => r.stage === s).reached);
    traces = [{ type: "bar", x: stages.map(label), y: reached, marker: { color: COLORS[0] },
      text: stages.map((s) => { const r = rows.find((x) => x.stage === s); return r.conversion === null ? fmt.int(r.reached) : `${fmt.int(r.reached)} (${fmt.pct(r.conversion)})`; }),
      textposition: "auto", hovertemplate: "%{x}: %{y}<extra></extra>" }];
  } else {
    const groups = [...new Set(rows.map((r) => r[groupKey]))];
    const first = (g) => (rows.find((r) => r[groupKey] === g && r.stage === stages[0]) || {}).reached || 0;
    const top = groups.sort((a, b) => first(b) - first(a)).slice(0, 8);
    traces = top.map((g) => ({ type: "bar", name: String(g), x: stages.map(label),
      y: stages.map((s) => (rows.find((r) => r[groupKey] === g && r.stage === s) || {}).reached || 0) }));
    if (groups.length > top.length) target.body.append(h("p", { class: "muted" }, `The 8 largest of ${groups.length} ${level}s are drawn; the table has all.`));
  }
  plot(box, traces, { barmode: "group", yaxis: { title: { text: `${level}s reached` } }, showlegend: Boolean(groupKey) });
  const columns = [
    ...(groupKey ? [{ key: groupKey, label: label(groupKey) }] : []),
    { key: "stage", label: "Stage", format: (v) => label(v) },
    { key: "reached", label: "Reached", numeric: true, format: fmt.int },
    { key: "conversion", label: "Conversion", numeric: true, format: fmt.pct },
    { key: "median_days_from_previous", label: "Median days", numeric: true, format: fmt.num },
  ];
  const details = h("details", {}, h("summary", {}, "Funnel table"), table(result.rows, columns, { caption: "Funnel", limit: 50 }));
  target.body.append(details, notes(result) || "");
  target.actions.append(csvButton(`funnel-${level}`, () => Promise.resolve(result)));
}
