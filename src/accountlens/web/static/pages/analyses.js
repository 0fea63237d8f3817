// `/analyses` and `/analyses/{name}`: one page per analysis (retention, handoffs, stalls,
// collaboration, sequences, paths, champions, signals, value, health, renewals, predictions,
// backtest), each a chart where a picture says it faster and its table with a CSV download.
// An analysis without a page of its own (a plugin's, a new one) gets the table page.
import { h, fmt, panel, fill, notes, table, csvButton, columnsOf, label, empty, missing, link, select } from "../ui.js";
import * as api from "../api.js";
import { chartBox, plot, hbar, graph, GRADE_COLORS, COLORS } from "../charts.js";
import { pageHeader, toolbar, asOfControl, facetSelect, filterValues, activeFilters, controlSwitch, choicesOf, grid } from "./common.js";

const ACCOUNT_FILTERS = ["industry", "region", "plan", "size_band"];

// A result as a panel: an optional chart, its table, notes and CSV of every row.
function resultPanel(ctx, { id, title, params = {}, description = null, draw = null, columns = null, skip = [], rowClass = null, wide = true, csv = null, empty: emptyText = "No rows." }) {
  const p = panel(title, { wide, id: `panel-${id}`, description });
  fill(p.body, () => ctx.query(id, params), async (result) => {
    if (!result.rows.length) {
      p.body.append(empty(emptyText), notes(result) || "");
      return;
    }
    if (draw) await draw(p, result);
    const cols = columns ? columns(result) : columnsOf(result, { skip });
    const total = result.total_rows;
    p.body.append(table(result.rows, cols, { caption: title, id: `${id}-table`, rowClass, limit: 100 }),
      total ? h("p", { class: "muted" }, `The first ${fmt.int(result.rows.length)} of ${fmt.int(total)} rows; the CSV has all.`) : "",
      notes(result) || "");
  }, { signal: ctx.signal });
  p.actions.append(csvButton(csv || id, () => (ctx.query(id, params).then((r) => (r.total_rows ? api.allRows(id, { ...params, as_of: ctx.get("as_of") }) : r)))));
  return p;
}

function chartFirst(p, description, height = 300) {
  const box = chartBox(description, { height });
  p.body.append(box);
  return box;
}

export const PAGES = {
  retention: {
    title: "Retention",
    summary: "Cohorts by acquisition week or month, and the share still active in each period after (users and accounts).",
    render(ctx) {
      const level = ctx.get("level", "user");
      const period = ctx.get("period", "week");
      const group = ctx.get("group");
      const filters = filterValues(ctx, ACCOUNT_FILTERS);
      ctx.main.append(toolbar(asOfControl(ctx), controlSwitch(ctx, "retention", "level", "Level", { fallback: "user", asSelect: true }),
        controlSwitch(ctx, "retention", "period", "Cohorts by", { fallback: "week" }), ...ACCOUNT_FILTERS.map((k) => facetSelect(ctx, k))),
      activeFilters(ctx, ACCOUNT_FILTERS) || "");
      const p = panel(`Retention of ${level === "user" ? "users" : level === "account" ? "accounts" : `accounts by ${label(level).toLowerCase()}`}, by ${period}`, { wide: true, id: "panel-retention" });
      ctx.main.append(p.root);
      fill(p.body, () => ctx.query("retention", { level, period, ...filters }), async (result) => {
        if (!result.rows.length) { p.body.append(empty("No cohort yet."), notes(result) || ""); return; }
        const groupKey = result.columns[0].name === "cohort" ? null : result.columns[0].name;
        let rows = result.rows;
        if (groupKey) {
          const groups = [...new Set(rows.map((r) => String(r[groupKey])))].sort();
          const chosen = groups.includes(group) ? group : groups[0];
          rows = rows.filter((r) => String(r[groupKey]) === chosen);
          p.body.append(select(label(groupKey), groups, chosen, (v) => ctx.set({ group: v }), { id: "retention-group" }));
        }
        const cohorts = [...new Set(rows.map((r) => r.cohort))].sort();
        const periods = [...new Set(rows.map((r) => r.period))].sort((a, b) => a - b);
        const cell = new Map(rows.map((r) => [`${r.cohort}|${r.period}`, r]));
        const z = cohorts.map((c) => periods.map((k) => { const r = cell.get(`${c}|${k}`); return r ? r.retention : null; }));
        const size = new Map(rows.map((r) => [r.cohort, r.cohort_size]));
        const box = chartFirst(p, `Retention heatmap: ${cohorts.length} cohorts by ${period}, share active in each ${period} after acquisition`, Math.min(900, Math.max(260, 18 * cohorts.length + 90)));
        await plot(box, [{ type: "heatmap", x: periods.map((k) => `${k}`), y: cohorts.map((c) => `${c} (${size.get(c)})`), z, zmin: 0, zmax: 1,
          colorscale: [[0, "#f1f3f9"], [0.5, "#7b9be6"], [1, "#1c3f9e"]], hoverongaps: false,
          hovertemplate: `cohort %{y}<br>${period} %{x}: %{z:.0%}<extra></extra>`, colorbar: { tickformat: ".0%", thickness: 10 } }],
        { xaxis: { title: { text: `${period}s after acquisition` }, type: "category" }, yaxis: { autorange: "reversed", type: "category", title: { text: "cohort (size)" } }, margin: { l: 8 } });
        p.body.append(h("details", {}, h("summary", {}, "Cohort table"), table(result.rows, columnsOf(result), { caption: "Retention cohorts", limit: 100 })), notes(result) || "");
      }, { signal: ctx.signal });
      p.actions.append(csvButton(`retention-${level}-${period}`, () => ctx.query("retention", { level, period, ...filters })));
    },
  },

  handoffs: {
    title: "Handoffs and bottlenecks",
    summary: "Who hands work on shared objects to whom, how long it waits, and which pairs hold things up.",
    render(ctx) {
      const level = ctx.get("level", "role");
      ctx.main.append(toolbar(asOfControl(ctx), controlSwitch(ctx, "bottlenecks", "level", "Level", { fallback: "role", asSelect: true })));
      const bottlenecks = resultPanel(ctx, { id: "bottlenecks", title: "Bottlenecks", params: { level },
        description: "Pairs ranked by how much slower than the typical handoff they are.",
        draw: async (p, r) => {
          const rows = r.rows.slice(0, 15);
          await hbar(chartFirst(p, `Median wait of the slowest pairs: ${rows.map((x) => `${x.from_actor} to ${x.to_actor} ${fmt.hours(x.median_latency_hours)}`).join(", ")}`),
            rows.map((x) => `${x.from_actor} → ${x.to_actor}`), rows.map((x) => x.median_latency_hours), { title: "median wait (hours)", format: (v) => fmt.hours(v) });
        } });
      const pairs = panel("Who hands work to whom", { wide: true, id: "panel-handoff-pairs" });
      ctx.main.append(grid(bottlenecks, pairs));
      fill(pairs.body, () => ctx.query("handoff-pairs", { level }), (r) => {
        if (!r.rows.length) { pairs.body.append(empty("No handoffs."), notes(r) || ""); return; }
        const edges = r.rows.map((x) => ({ from: x.from_actor, to: x.to_actor, weight: x.handoffs, text: `${fmt.int(x.handoffs)} handoffs, median ${fmt.hours(x.median_latency_hours)}` }));
        pairs.body.append(h("div", { class: "split" }, graph(edges, { description: `Handoffs between ${level}s: ${edges.length} pairs` }),
          table(r.rows, columnsOf(r), { caption: "Handoff pairs", id: "handoff-pairs-table", limit: 50 })), notes(r) || "");
      }, { signal: ctx.signal });
      pairs.actions.append(csvButton(`handoffs-${level}`, () => ctx.query("handoff-pairs", { level })));
    },
  },

  stalls: {
    title: "Stalled work",
    summary: "Shared objects whose last step is too old and that never reached their final event.",
    render(ctx) {
      ctx.main.append(toolbar(asOfControl(ctx)));
      ctx.main.append(grid(resultPanel(ctx, { id: "stalls", title: "Stalled objects", empty: "Nothing is stalled.",
        draw: async (p, r) => {
          const counts = countBy(r.rows, "waiting_after");
          await hbar(chartFirst(p, `Stalled objects by who they wait after: ${counts.map(([k, n]) => `${k} ${n}`).join(", ")}`),
            counts.map(([k]) => k), counts.map(([, n]) => n), { title: "stalled objects (waiting after)" });
        } })));
    },
  },

  collaboration: {
    title: "Collaboration",
    summary: "How many people work together on shared objects per account or unit, across teams and departments, and whether it hangs on one person.",
    render(ctx) {
      const level = ctx.get("level", "account");
      const nodes = ctx.get("nodes", "role");
      ctx.main.append(toolbar(asOfControl(ctx), controlSwitch(ctx, "collaboration", "level", "Level", { fallback: "account", asSelect: true })));
      const summary = resultPanel(ctx, { id: "collaboration", title: "Collaboration", params: { level },
        rowClass: (r) => (r.champion_dependent ? "risk-medium" : null) });
      const graphPanel = panel("Who works with whom", { wide: true, id: "panel-collaboration-graph", actions: [controlSwitch(ctx, "collaboration-graph", "nodes", "Nodes", { fallback: "role" })] });
      ctx.main.append(grid(summary, graphPanel));
      fill(graphPanel.body, async () => {
        const accounts = (await ctx.query("collaboration", { level: "account" })).rows;
        const chosen = ctx.get("account") || (accounts[0] && accounts[0].account_id);
        if (!chosen) return { accounts, chosen, result: null };
        return { accounts, chosen, result: await ctx.query("collaboration-graph", { account: chosen, nodes }) };
      }, ({ accounts, chosen, result }) => {
        if (!chosen) { graphPanel.body.append(empty("No account has collaboration yet.")); return; }
        graphPanel.body.append(select("Account", accounts.map((a) => [a.account_id, a.account_name || a.account_id]), chosen, (v) => ctx.set({ account: v }), { id: "collaboration-account" }));
        if (!result.rows.length) { graphPanel.body.append(empty("No shared work in this account."), notes(result) || ""); return; }
        const edges = result.rows.map((x) => ({ from: x.source, to: x.target, weight: x.weight, text: `${fmt.int(x.weight)} handoffs, median ${fmt.hours(x.median_latency_hours)}` }));
        graphPanel.body.append(graph(edges, { description: `Who works with whom in ${chosen}, by ${nodes}: ${edges.length} links` }), notes(result) || "");
      }, { signal: ctx.signal });
    },
  },

  sequences: {
    title: "Influence sequences",
    summary: "Multi-user patterns (role: event → role: event) that precede renewals, expansions or churn more often than chance.",
    render(ctx) {
      const outcome = ctx.get("outcome", "renewal");
      const view = ctx.get("view", "patterns");
      ctx.main.append(toolbar(asOfControl(ctx), controlSwitch(ctx, "sequences", "outcome", "Outcome", { fallback: "renewal", asSelect: true }),
        controlSwitch(ctx, "sequences", "view", "View", { fallback: "patterns" })));
      ctx.main.append(grid(resultPanel(ctx, { id: "sequences", title: view === "unlocks" ? "Junior activity that unlocks senior interest" : `Sequences that precede ${outcome}`,
        params: { outcome, view }, empty: "No pattern is significant here.",
        draw: view === "patterns" ? async (p, r) => {
          const rows = r.rows.slice(0, 12);
          await hbar(chartFirst(p, `Lift of the strongest patterns: ${rows.map((x) => `${x.pattern} ${fmt.num(x.lift)}`).join("; ")}`),
            rows.map((x) => x.pattern), rows.map((x) => x.lift), { title: `lift (× the ${outcome} rate)`, format: fmt.num });
        } : null })));
    },
  },

  paths: {
    title: "Onboarding paths and time-to-value",
    summary: "How long each role (or team, department) takes to reach value, and the first steps users take.",
    render(ctx) {
      const level = ctx.get("level", "role");
      const role = ctx.get("role");
      ctx.main.append(toolbar(asOfControl(ctx), controlSwitch(ctx, "ttv", "level", "Level", { fallback: "role", asSelect: true })));
      const ttv = resultPanel(ctx, { id: "ttv", title: "Time-to-value", params: { level },
        draw: async (p, r) => {
          const key = r.columns[0].name;
          const rows = r.rows.filter((x) => !missing(x.median_ttv_days));
          await hbar(chartFirst(p, `Median days to first value by ${key}: ${rows.map((x) => `${x[key]} ${fmt.num(x.median_ttv_days)}`).join(", ")}`),
            rows.map((x) => String(x[key])), rows.map((x) => x.median_ttv_days), { title: "median days to first value", format: fmt.num, color: COLORS[2] });
        } });
      const roles = h("div", { class: "control-slot" });
      const paths = resultPanel(ctx, { id: "paths", title: role ? `First steps of ${role}s` : "First steps", params: { level, role } });
      paths.actions.prepend(roles);
      ctx.query("ttv", { level: "role" }).then((r) => {
        roles.replaceChildren(select("Role", r.rows.map((x) => x.role), role || "", (v) => ctx.set({ role: v || null }), { id: "paths-role", anyLabel: "Every role" }));
      }).catch(() => {});
      ctx.main.append(grid(ttv, paths));
    },
  },

  champions: {
    title: "Champions",
    summary: "Each account's most active person, whether they are still there, and the risk when they are not.",
    render(ctx) {
      ctx.main.append(toolbar(asOfControl(ctx)));
      ctx.main.append(grid(resultPanel(ctx, { id: "champions", title: "Champions by risk",
        rowClass: (r) => `risk-${r.risk}`,
        draw: async (p, r) => {
          const statuses = ["active", "quiet", "left", "none"];
          const risks = ["high", "medium", "low"];
          const colors = { high: "#c92a2a", medium: "#c77700", low: "#2b8a3e" };
          await plot(chartFirst(p, `Accounts by champion status and risk: ${countBy(r.rows, "status").map(([k, n]) => `${k} ${n}`).join(", ")}`, 240),
            risks.map((risk) => ({ type: "bar", name: `${risk} risk`, x: statuses.map(label), y: statuses.map((s) => r.rows.filter((x) => x.status === s && x.risk === risk).length), marker: { color: colors[risk] } })),
            { barmode: "stack", yaxis: { title: { text: "accounts" } } });
        } })));
    },
  },

  signals: {
    title: "Signals",
    summary: "Product-qualified accounts, expansion and contraction signals, with the evidence in words.",
    filters: true,
    render(ctx) {
      const kind = ctx.get("kind");
      const filters = filterValues(ctx, ACCOUNT_FILTERS);
      ctx.main.append(toolbar(asOfControl(ctx), kindSelect(ctx), ...ACCOUNT_FILTERS.map((k) => facetSelect(ctx, k))), activeFilters(ctx, [...ACCOUNT_FILTERS, "kind"]) || "");
      ctx.main.append(grid(resultPanel(ctx, { id: "signals", title: kind ? `${label(kind)} signals` : "Signals that fire", params: { kind, ...filters }, empty: "No signal fires.",
        skip: ["items", "window_days", "threshold"],
        draw: async (p, r) => {
          const counts = countBy(r.rows, "signal");
          await hbar(chartFirst(p, `Signals that fire: ${counts.map(([k, n]) => `${k} ${n}`).join(", ")}`, 200), counts.map(([k]) => label(k)), counts.map(([, n]) => n), { title: "accounts" });
        } })));
    },
  },

  value: {
    title: "Value realization",
    summary: "Whether each customer has realized value yet, how late it is against accounts like it, what the delay costs and when it will get there.",
    render(ctx) {
      const by = ctx.get("benchmark_by", "plan");
      const filters = filterValues(ctx, ACCOUNT_FILTERS);
      ctx.main.append(toolbar(asOfControl(ctx), controlSwitch(ctx, "value", "benchmark_by", "Benchmark by", { fallback: "plan", asSelect: true }), ...ACCOUNT_FILTERS.map((k) => facetSelect(ctx, k))),
        activeFilters(ctx, ACCOUNT_FILTERS) || "");
      ctx.main.append(grid(resultPanel(ctx, { id: "value", title: "Customers by cost of delay", params: { benchmark_by: by, ...filters },
        draw: async (p, r) => {
          const rows = r.rows.filter((x) => x.cost_of_delay > 0).slice(0, 15);
          if (!rows.length) return;
          await hbar(chartFirst(p, `Cost of delayed value, largest first: ${rows.map((x) => `${x.account_name} ${fmt.money(x.cost_of_delay)}`).join(", ")}`),
            rows.map((x) => x.account_name || x.account_id), rows.map((x) => x.cost_of_delay), { title: "cost of delay (ARR ÷ 365 × days late)", format: fmt.money, color: COLORS[1] });
        } })));
    },
  },

  health: {
    title: "Health",
    summary: "Every account's health score, its grade, trend and biggest lever.",
    render(ctx) {
      const filters = filterValues(ctx, ACCOUNT_FILTERS);
      ctx.main.append(toolbar(asOfControl(ctx), ...ACCOUNT_FILTERS.map((k) => facetSelect(ctx, k))), activeFilters(ctx, ACCOUNT_FILTERS) || "");
      ctx.main.append(grid(resultPanel(ctx, { id: "health", title: "Health, worst first", params: filters,
        columns: (r) => columnsOf(r).filter((c) => !/_(value|score|weight|contribution)$/.test(c.key) || c.key === "group_score"),
        rowClass: (r) => `grade-row-${r.grade}`,
        draw: async (p, r) => {
          const grades = ["poor", "concerning", "healthy"];
          await plot(chartFirst(p, "Distribution of health scores by grade", 240), grades.map((g) => ({ type: "histogram", name: label(g),
            x: r.rows.filter((x) => x.grade === g).map((x) => x.score), xbins: { start: 0, end: 100, size: 5 }, marker: { color: GRADE_COLORS[g] } })),
          { barmode: "stack", xaxis: { title: { text: "health score" }, range: [0, 100] }, yaxis: { title: { text: "accounts" } } });
        } })));
    },
  },

  renewals: {
    title: "Renewals",
    summary: "Contracts coming up for renewal, their ARR, how likely each is to renew, and the ARR at risk.",
    render(ctx) {
      const days = Number.parseInt(ctx.get("days", "90"), 10) || 90;
      const by = ctx.get("by", "plan");
      const filters = filterValues(ctx, ACCOUNT_FILTERS);
      ctx.main.append(toolbar(asOfControl(ctx),
        select("Due within", [30, 60, 90, 180, 365].map((d) => [String(d), `${d} days`]), String(days), (v) => ctx.set({ days: v === "90" ? null : v }), { id: "renewals-days" }),
        ...ACCOUNT_FILTERS.map((k) => facetSelect(ctx, k))), activeFilters(ctx, ACCOUNT_FILTERS) || "");
      const due = resultPanel(ctx, { id: "renewals", title: `Renewals due in ${days} days`, params: { days, ...filters }, empty: "No renewal is due in this window.",
        skip: ["drivers", "subscriptions", "contracts", "champion_user_id", "industry", "region", "size_band"],
        rowClass: (r) => (r.renewal_probability !== null && r.renewal_probability < 0.5 ? "risk-high" : null),
        draw: async (p, r) => {
          const months = [...new Set(r.rows.map((x) => String(x.renewal_date).slice(0, 7)))].sort();
          const sum = (m, k) => r.rows.filter((x) => String(x.renewal_date).startsWith(m)).reduce((n, x) => n + (x[k] || 0), 0);
          await plot(chartFirst(p, `Renewal ARR by month, expected to renew and at risk, ${months.join(", ")}`, 240), [
            { type: "bar", name: "Expected to renew", x: months, y: months.map((m) => sum(m, "expected_renewal_arr")), marker: { color: "#2b8a3e" } },
            { type: "bar", name: "At risk", x: months, y: months.map((m) => sum(m, "arr_at_risk")), marker: { color: "#c92a2a" } }],
          { barmode: "stack", xaxis: { type: "category", title: { text: "month due" } }, yaxis: { title: { text: "ARR" } } });
        } });
      const segments = resultPanel(ctx, { id: "renewal-segments", title: `By ${label(by).toLowerCase()}`, params: { days, by, ...filters }, wide: false });
      segments.actions.prepend(controlSwitch(ctx, "renewal-segments", "by", "Segment", { fallback: "plan", asSelect: true }));
      ctx.main.append(grid(due, segments));
    },
  },

  predict: {
    title: "Predictions",
    summary: "Churn, renewal and expansion probabilities per account, with each account's drivers.",
    render(ctx) {
      const outcome = ctx.get("outcome", "churn");
      const filters = filterValues(ctx, ACCOUNT_FILTERS);
      ctx.main.append(toolbar(asOfControl(ctx), controlSwitch(ctx, "predict", "outcome", "Outcome", { fallback: "churn" }), ...ACCOUNT_FILTERS.map((k) => facetSelect(ctx, k))),
        activeFilters(ctx, ACCOUNT_FILTERS) || "");
      ctx.main.append(grid(resultPanel(ctx, { id: "predict", title: `${label(outcome)} probability`, params: { outcome, ...filters },
        empty: "No prediction: see the note.", skip: ["base"],
        draw: async (p, r) => {
          await plot(chartFirst(p, `Distribution of ${outcome} probabilities over ${r.rows.length} accounts`, 220), [{ type: "histogram", x: r.rows.map((x) => x.probability),
            xbins: { start: 0, end: 1, size: 0.05 }, marker: { color: COLORS[outcome === "churn" ? 1 : 2] } }],
          { xaxis: { title: { text: `${outcome} probability` }, tickformat: ".0%", range: [0, 1] }, yaxis: { title: { text: "accounts" } } });
        } })));
    },
  },

  backtest: {
    title: "Backtest",
    summary: "How well the models and the health score predicted outcomes at past cut-offs: AUC, calibration and lift.",
    render(ctx) {
      const outcome = ctx.get("outcome", "churn");
      ctx.main.append(toolbar(asOfControl(ctx), controlSwitch(ctx, "backtest", "outcome", "Outcome", { fallback: "churn" })));
      const summary = resultPanel(ctx, { id: "backtest", title: `How well ${outcome} was predicted`, params: { outcome }, empty: "Too few outcomes to backtest: see the note.",
        rowClass: (r) => (r.used ? "used" : null) });
      const calibration = resultPanel(ctx, { id: "calibration", title: "Calibration", params: { outcome }, wide: true,
        description: "Predicted probability against the observed rate, per bin: a calibrated model lies on the diagonal.",
        draw: async (p, r) => {
          const sources = [...new Set(r.rows.map((x) => x.source))];
          await plot(chartFirst(p, `Calibration of the ${outcome} predictions of ${sources.join(", ")}: observed rate against mean predicted probability`, 320), [
            { type: "scatter", mode: "lines", name: "perfect", x: [0, 1], y: [0, 1], line: { color: "#adb5bd", dash: "dot" } },
            ...sources.map((s, i) => {
              const rows = r.rows.filter((x) => x.source === s);
              return { type: "scatter", mode: "lines+markers", name: s, x: rows.map((x) => x.mean_predicted), y: rows.map((x) => x.observed_rate),
                text: rows.map((x) => `${x.count} accounts`), line: { color: COLORS[i % COLORS.length] } };
            })], { xaxis: { title: { text: "mean predicted" }, range: [0, 1], tickformat: ".0%" }, yaxis: { title: { text: "observed rate" }, range: [0, 1], tickformat: ".0%" } });
        } });
      ctx.main.append(grid(summary, calibration));
    },
  },
};

function kindSelect(ctx) {
  const box = h("div", { class: "control-slot" });
  choicesOf("signals", "kind").then((kinds) => {
    box.replaceChildren(select("Kind", kinds, ctx.get("kind", ""), (v) => ctx.set({ kind: v || null }), { id: "filter-kind", anyLabel: "Every kind" }));
  }).catch(() => {});
  return box;
}

function countBy(rows, key) {
  const counts = new Map();
  for (const r of rows) counts.set(r[key] ?? "(none)", (counts.get(r[key] ?? "(none)") || 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}

// Analyses that are pages of their own elsewhere.
const ELSEWHERE = { accounts: "/accounts", activity: "/", attribution: "/attribution", experiments: "/experiments" };

export const analysesIndex = {
  render(ctx) {
    ctx.main.append(pageHeader(ctx, "Analyses", { subtitle: "Pick a question; every page takes an as-of date and offers its table as CSV." }));
    const list = h("ul", { class: "analysis-cards" }, Object.entries(PAGES).map(([name, page]) => h("li", {},
      link(`/analyses/${name}`, page.title, {}, { class: "card-link" }), h("p", { class: "muted" }, page.summary))));
    ctx.main.append(list);
    api.getJSON("/api/v1/analyses", {}, { signal: ctx.signal }).then((all) => {
      const more = all.filter((a) => !PAGES[a.name] && !ELSEWHERE[a.name]);
      for (const a of more) {
        list.append(h("li", {}, link(`/analyses/${a.name}`, label(a.name), {}, { class: "card-link" }), h("p", { class: "muted" }, a.summary)));
      }
    }).catch(() => {});
  },
};

export const analysisPage = {
  render(ctx) {
    const name = ctx.args[0];
    const page = PAGES[name];
    ctx.main.append(h("p", { class: "breadcrumb" }, link("/analyses", "Analyses"), " / "),
      pageHeader(ctx, page ? page.title : label(name), { subtitle: page ? page.summary : null }),
      tabs(name));
    if (page) page.render(ctx);
    else genericPage(ctx, name);
  },
};

function tabs(current) {
  return h("nav", { class: "tabs", "aria-label": "Analyses" }, h("ul", {}, Object.entries(PAGES).map(([name, page]) =>
    h("li", {}, link(`/analyses/${name}`, page.title.split(" and ")[0], {}, { "aria-current": name === current ? "page" : null })))));
}

// An analysis with no page of its own: its rows as a table.
function genericPage(ctx, name) {
  ctx.main.append(toolbar(asOfControl(ctx)));
  const p = panel(label(name), { wide: true, id: "panel-generic" });
  ctx.main.append(p.root);
  const path = `/api/v1/analyses/${encodeURIComponent(name)}`;
  const asOf = ctx.get("as_of");
  const params = { ...(asOf ? { as_of: asOf } : {}), limit: 500 };
  fill(p.body, () => api.getJSON(path, params, { signal: ctx.signal }), (r) => {
    ctx.seen(r.as_of);
    p.body.append(r.rows.length ? table(r.rows, columnsOf(r), { caption: label(name), id: "generic-table" }) : empty("No rows."), notes(r) || "");
  }, { signal: ctx.signal });
  p.actions.append(csvButton(name, () => api.getJSON(path, { ...params, limit: 100000 })));
}

