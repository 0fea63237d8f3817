// `/experiments`: the account-level experiments of the workspace (who saw which variant), and
// for the one chosen, each variant's effect on a metric or an outcome with its interval, p-value
// and method, beside the checks that say whether to trust it: the sample ratio, accounts that
// saw more than one variant, CUPED and the design effect (docs/experiments.md).
import { h, fmt, panel, fill, notes, table, csvButton, empty, missing, select, segmented } from "../ui.js";
import { chartBox, plot, COLORS } from "../charts.js";
import { pageHeader, toolbar, asOfControl, choicesOf, grid } from "./common.js";
import * as api from "../api.js";

const PANEL = "experiment-result"; // api/dashboard.py
const EXPERIMENTS = "/api/v1/experiments";
const METRICS = "/api/v1/metrics";
// What the variants are compared on when the reader has chosen nothing: monthly active users,
// a metric every workspace has with one value per account.
const DEFAULT_METRIC = "mau";
const NONE_YET = "No experiments yet: assign accounts to variants with `accountlens experiments assign …`, import exposures (`accountlens import exposures FILE`), or send `Experiment Viewed` events.";

export default {
  render(ctx) {
    const asOf = ctx.get("as_of");
    const listed = api.getJSON(EXPERIMENTS, asOf ? { as_of: asOf } : {}, { signal: ctx.signal }).then(byExperiment);
    const chosenExperiment = ctx.get("experiment");
    const measure = measureOf(ctx);
    const method = ctx.get("method");
    const cuped = ctx.get("cuped");
    const unit = ctx.get("unit");

    const experimentSlot = h("div", { class: "control-slot" }, select("Experiment", chosenExperiment ? [[chosenExperiment, chosenExperiment]] : [], chosenExperiment, () => {}, { id: "control-experiment" }));
    listed.then((list) => {
      const names = (list || []).map((e) => e.experiment);
      if (!names.length) return;
      const shown = chosenExperiment && !names.includes(chosenExperiment) ? [chosenExperiment, ...names] : names;
      experimentSlot.replaceChildren(select("Experiment", shown.map((n) => [n, n]), chosenExperiment || names[0], (v) => ctx.set({ experiment: v }), { id: "control-experiment" }));
    }).catch(() => {});

    ctx.main.append(
      pageHeader(ctx, "Experiments", { subtitle: "Which accounts saw which variant, and what each variant changed, with its interval and the checks that say whether to trust it." }),
      toolbar(asOfControl(ctx), experimentSlot, measureSelect(ctx, measure),
        choiceSelect(ctx, "method", "Method", method),
        choiceSegmented(ctx, "unit", "Unit", unit),
        h("div", { class: "field check" },
          h("input", { type: "checkbox", id: "control-cuped", name: "cuped", checked: cuped !== "false",
            onchange: (e) => ctx.set({ cuped: e.target.checked ? null : "false" }) }),
          h("label", { for: "control-cuped" }, "CUPED (adjust for the pre-period)"))),
    );

    const list = panel("Experiments", { wide: true, id: "panel-experiments",
      description: "Every experiment with exposures or assignments, and how many accounts each variant has." });
    const result = panel("Result", { wide: true, id: "panel-result",
      description: "Each variant against the control: the effect with its 95 % interval (the whiskers; the dashed line is no effect)." });
    const checks = panel("Checks", { wide: true, id: "panel-checks",
      description: "Whether the result can be trusted: the split of accounts, accounts that saw several variants, CUPED, and the notes." });
    ctx.main.append(grid(list, result, checks));

    fill(list.body, () => listed, (experiments) => {
      list.body.dataset.rows = experiments.length;
      if (!experiments.length) { list.body.append(empty(NONE_YET)); return; }
      list.body.append(table(experiments, listColumns(ctx, chosenExperiment || experiments[0].experiment), { caption: "Experiments", id: "experiments-table" }));
    }, { signal: ctx.signal });
    list.actions.append(csvButton("experiments", () => api.getJSON(EXPERIMENTS, asOf ? { as_of: asOf } : {}).then(listAsResult)));

    // The experiment shown: the one chosen (whether or not the list could be read), else the
    // first listed.
    const experiment = chosenExperiment ? Promise.resolve(chosenExperiment)
      : listed.then((experiments) => (experiments[0] && experiments[0].experiment) || null);
    const params = { ...measure, ...(method ? { method } : {}), ...(cuped ? { cuped } : {}), ...(unit ? { unit } : {}) };
    const ask = (extra = {}) => experiment.then((name) => (name ? ctx.query(PANEL, { experiment: name, ...params, ...extra }) : null));

    fill(result.body, ask, async (answer) => {
      if (!answer) { result.body.append(empty(NONE_YET)); return; }
      const name = await experiment;
      result.body.dataset.experiment = name;
      const rows = answer.rows;
      if (!rows.length) { result.body.append(empty(`No exposed accounts in ${name} before this day.`), notes(answer) || ""); return; }
      result.body.append(h("p", { class: "muted" }, `${name}, compared on ${describeMeasure(measure)} by ${rows[0].method ? methodText(rows[0].method) : "the default method"}.`));
      const [control, ...treated] = rows;
      const box = chartBox(`Interval plot: the effect of ${treated.map((r) => r.variant).join(", ") || "no variant"} against ${control.variant} on ${describeMeasure(measure)}, with 95 % intervals and the line of no effect`,
        { height: Math.max(150, 56 * rows.length + 80) });
      result.body.append(box, table(rows, resultColumns(answer), { caption: `Result of ${name}`, id: "result-table" }));
      await drawIntervals(box, rows, describeMeasure(measure));
    }, { signal: ctx.signal });
    experiment.then((name) => {
      if (name) result.actions.append(csvButton(`experiment-${name}`, () => ask()));
    }).catch(() => {});

    fill(checks.body, ask, (answer) => {
      if (!answer) { checks.body.append(empty("Nothing to check yet.")); return; }
      drawChecks(checks.body, answer, cuped !== "false");
    }, { signal: ctx.signal });
  },
};

// What is measured: a metric (`metric=`) or an outcome (`outcome=`), from the URL.
function measureOf(ctx) {
  const metric = ctx.get("metric");
  const outcome = ctx.get("outcome");
  if (metric) return { metric };
  if (outcome) return { outcome };
  return { metric: DEFAULT_METRIC };
}

const metricName = (name) => String(name).replaceAll("_", " ");

function describeMeasure(measure) {
  if (measure.metric) return metricName(measure.metric);
  if (measure.outcome) return `the ${measure.outcome} rate`;
  return "the default metric";
}

const methodName = (method) => ({ cr2: "CR2", cr1: "CR1", hc2: "HC2", randomization: "Randomization" }[method] || method);

function methodText(method) {
  return { cr2: "CR2 cluster-robust errors (small-sample corrected)", cr1: "CR1 cluster-robust errors",
    hc2: "HC2 robust errors", randomization: "a randomization test" }[method] || method;
}

// One select for what to measure: the metrics offered at the account level and the outcomes
// (from the request's type).
function measureSelect(ctx, measure) {
  const value = measure.metric ? `metric:${measure.metric}` : `outcome:${measure.outcome}`;
  const onchange = (e) => {
    const [kind, name] = e.target.value.split(/:(.*)/s);
    ctx.set({ metric: kind === "metric" && name !== DEFAULT_METRIC ? name : null, outcome: kind === "outcome" ? name : null });
  };
  const option = (kind, name) => h("option", { value: `${kind}:${name}`, selected: `${kind}:${name}` === value },
    kind === "metric" ? metricName(name) : `${name} (outcome)`);
  const control = h("select", { id: "control-measure", name: "measure", onchange },
    option(measure.metric ? "metric" : "outcome", measure.metric || measure.outcome));
  const box = h("div", { class: "field" }, h("label", { for: "control-measure" }, "Compared on"), control);
  Promise.all([choicesOf(PANEL, "outcome").catch(() => []), api.getJSON(METRICS).catch(() => [])]).then(([outcomes, metrics]) => {
    const accountMetrics = (metrics || []).filter((m) => (m.levels || []).includes("account")).map((m) => m.name).sort();
    if (measure.metric && !accountMetrics.includes(measure.metric)) accountMetrics.unshift(measure.metric);
    if (measure.outcome && !outcomes.includes(measure.outcome)) outcomes.unshift(measure.outcome);
    control.replaceChildren(
      accountMetrics.length ? h("optgroup", { label: "Metrics" }, accountMetrics.map((m) => option("metric", m))) : null,
      outcomes.length ? h("optgroup", { label: "Outcomes (after exposure)" }, outcomes.map((o) => option("outcome", o))) : null);
  });
  return box;
}

// A control of the request's type: its first choice is the request's default (cr2, account),
// left out of the URL. Hidden when the server declares none (an older server).
function choiceSelect(ctx, control, text, value) {
  const slot = h("div", { class: "control-slot" });
  choicesOf(PANEL, control).then((choices) => {
    if (!choices.length) return;
    slot.replaceChildren(select(text, choices.map((c) => [c, methodName(c)]), value || choices[0],
      (v) => ctx.set({ [control]: v === choices[0] ? null : v }), { id: `control-${control}` }));
  }).catch(() => {});
  return slot;
}

function choiceSegmented(ctx, control, text, value) {
  const slot = h("div", { class: "control-slot" });
  choicesOf(PANEL, control).then((choices) => {
    if (!choices.length) return;
    slot.replaceChildren(segmented(text, choices, value || choices[0], (v) => ctx.set({ [control]: v === choices[0] ? null : v }), { id: `control-${control}` }));
  }).catch(() => {});
  return slot;
}

// --- the list of experiments -----------------------------------------------------------------
// GET /api/v1/experiments answers one row per experiment and variant (model/exposures.py
// `experiments_overview`); the page shows one row per experiment.
function byExperiment(rows) {
  const out = new Map();
  for (const r of rows || []) {
    if (!out.has(r.experiment)) {
      out.set(r.experiment, { experiment: r.experiment, variants: [], exposed_accounts: 0, assigned_accounts: 0,
        first_exposure: null, last_exposure: null, sources: new Set() });
    }
    const e = out.get(r.experiment);
    if (!missing(r.variant)) e.variants.push(r);
    e.exposed_accounts += r.exposed_accounts || 0;
    e.assigned_accounts += r.assigned_accounts || 0;
    if (r.first_exposure && (!e.first_exposure || r.first_exposure < e.first_exposure)) e.first_exposure = r.first_exposure;
    if (r.last_exposure && (!e.last_exposure || r.last_exposure > e.last_exposure)) e.last_exposure = r.last_exposure;
    for (const source of String(r.sources || "").split(/,\s*/)) if (source) e.sources.add(source);
  }
  return [...out.values()].map((e) => ({ ...e, sources: [...e.sources].sort().join(", ") }));
}

function variantsCell(e) {
  if (!e.variants.length) return "–";
  return h("ul", { class: "variant-list" }, e.variants.map((v) => h("li", { dataset: { variant: v.variant } },
    h("strong", {}, v.variant), ": ",
    `${fmt.int(v.exposed_accounts)} exposed`, missing(v.assigned_accounts) || !v.assigned_accounts ? "" : ` of ${fmt.int(v.assigned_accounts)} assigned`)));
}

function listColumns(ctx, current) {
  return [
    { key: "experiment", label: "Experiment", cell: (r) => (r.experiment === current
      ? h("strong", { "aria-current": "true" }, r.experiment, h("span", { class: "sr-only" }, " (shown below)"))
      : h("a", { href: ctx.link(location.pathname, { ...Object.fromEntries(ctx.params), experiment: r.experiment }) }, r.experiment)) },
    { key: "variants", label: "Accounts per variant", cell: variantsCell, sortable: false },
    { key: "exposed_accounts", label: "Exposed accounts", numeric: true, format: fmt.int },
    { key: "first_exposure", label: "First exposure", format: fmt.time },
    { key: "last_exposure", label: "Last exposure", format: fmt.time },
    { key: "sources", label: "From", format: fmt.text },
  ];
}

const LIST_COLUMNS = ["experiment", "variant", "assigned_accounts", "exposed_accounts", "first_exposure", "last_exposure", "sources"];

function listAsResult(rows) {
  const names = rows.length ? Object.keys(rows[0]) : LIST_COLUMNS;
  return { as_of: (rows.map((r) => r.last_exposure).filter(Boolean).sort().pop() || "none").slice(0, 10), columns: names.map((name) => ({ name })), rows };
}

// --- the result --------------------------------------------------------------------------------
function resultColumns(answer) {
  const names = answer.columns.map((c) => c.name);
  const num = (v) => (missing(v) ? "–" : Math.abs(v) >= 1000 ? fmt.int(v) : String(Number(Number(v).toPrecision(3))));
  const signed = (v) => (missing(v) ? "–" : `${v > 0 ? "+" : ""}${num(v)}`);
  const columns = [
    { key: "variant", label: "Variant", format: fmt.text },
    { key: "accounts", label: "Accounts", numeric: true, format: fmt.int },
  ];
  if (names.includes("users")) columns.push({ key: "users", label: "Users", numeric: true, format: fmt.int });
  columns.push(
    { key: "mean", label: "Mean", numeric: true, format: num },
    { key: "effect", label: "Effect", numeric: true, format: (v, r) => (r === answer.rows[0] ? "reference" : signed(v)) },
    { key: "relative_lift", label: "Relative lift", numeric: true, format: (v) => (missing(v) ? "–" : `${v > 0 ? "+" : ""}${(v * 100).toFixed(1)}%`) },
    { key: "ci_low", label: "95 % interval", numeric: true, format: (v, r) => (missing(v) || missing(r.ci_high) ? "–" : `${signed(v)} to ${signed(r.ci_high)}`) },
    { key: "p_value", label: "p-value", numeric: true, format: pValue },
    { key: "method", label: "Method", format: (v, r) => (missing(v) ? "–" : `${v}${missing(r.df) ? "" : `, ${Number(r.df).toFixed(1)} df`}`) },
  );
  return columns;
}

function pValue(v) {
  if (missing(v)) return "–";
  if (v < 0.001) return "< 0.001";
  return v.toFixed(3);
}

// The first row is the control (effect 0, no interval): drawn as the reference on the line.
async function drawIntervals(box, rows, measured) {
  const y = rows.map((r, i) => (i === 0 && !/control/i.test(r.variant) ? `${r.variant} (control)` : String(r.variant)));
  await plot(box, [{
    type: "scatter", mode: "markers", name: "effect", x: rows.map((r) => (missing(r.effect) ? 0 : r.effect)), y,
    marker: { color: rows.map((r, i) => (i === 0 ? "#5c6b8a" : significant(r) ? COLORS[0] : "#1d2330")), size: 11,
      symbol: rows.map((r, i) => (i === 0 ? "circle-open" : "diamond")) },
    error_x: { type: "data", symmetric: false, thickness: 2, width: 6, color: "#1d2330",
      array: rows.map((r) => (missing(r.ci_high) ? 0 : r.ci_high - r.effect)),
      arrayminus: rows.map((r) => (missing(r.ci_low) ? 0 : r.effect - r.ci_low)) },
    customdata: rows.map((r) => [missing(r.ci_low) ? "–" : r.ci_low.toPrecision(3), missing(r.ci_high) ? "–" : r.ci_high.toPrecision(3), pValue(r.p_value)]),
    hovertemplate: "%{y}: %{x:.3g} (%{customdata[0]} to %{customdata[1]}), p %{customdata[2]}<extra></extra>",
  }], {
    showlegend: false, margin: { l: 8, t: 8, b: 40 },
    xaxis: { title: { text: `effect on ${measured} against the control` }, zeroline: false },
    yaxis: { type: "category", autorange: "reversed" },
    shapes: [{ type: "line", xref: "x", yref: "paper", x0: 0, x1: 0, y0: 0, y1: 1, line: { color: "#a61e1e", width: 1.5, dash: "dash" } }],
  });
}

function significant(r) {
  return !missing(r.ci_low) && !missing(r.ci_high) && (r.ci_low > 0 || r.ci_high < 0);
}

// --- the checks --------------------------------------------------------------------------------
function check(key, ok, title, detail) {
  const verdict = ok === null ? "info" : ok ? "pass" : "fail";
  return h("li", { class: `check ${verdict}`, dataset: { check: key, verdict } },
    h("span", { class: "verdict" }, verdict === "info" ? "Info" : verdict === "pass" ? "Pass" : "Fail"),
    h("span", {}, h("strong", {}, title), ": ", detail));
}

function drawChecks(target, answer, cupedAsked) {
  const rows = answer.rows;
  const items = [];
  const srm = rows.find((r) => !missing(r.srm_p_value));
  if (srm) {
    const mismatch = rows.some((r) => r.srm_mismatch === true);
    items.push(check("srm", !mismatch, "Sample ratio", mismatch
      ? `the accounts per variant (${rows.map((r) => `${r.variant} ${fmt.int(r.accounts)}`).join(", ")}) differ from the planned split more than chance explains (p = ${pValue(srm.srm_p_value)}): find out why before reading the effect`
      : `the accounts per variant (${rows.map((r) => `${r.variant} ${fmt.int(r.accounts)}`).join(", ")}) fit the planned split (p = ${pValue(srm.srm_p_value)})`));
  } else if (rows.length) {
    items.push(check("srm", null, "Sample ratio", "not checked"));
  }
  if (rows.some((r) => !missing(r.multiple_exposure))) {
    // an account seen in two variants counts in both rows; the note has the accounts
    const said = (answer.notes || []).map((n) => n.match(/^(\d+) account\(s\) were exposed to several variants/)).find(Boolean);
    const multiple = said ? Number(said[1]) : Math.max(...rows.map((r) => (missing(r.multiple_exposure) ? 0 : Number(r.multiple_exposure))));
    items.push(check("multiple-exposure", multiple === 0, "Accounts that saw several variants", multiple === 0
      ? "none"
      : `${fmt.int(multiple)} account${multiple === 1 ? "" : "s"} saw more than one variant (${rows.map((r) => `${r.variant} ${fmt.int(r.multiple_exposure)}`).join(", ")})`));
  }
  const cupedNote = (answer.notes || []).find((n) => /^cuped/i.test(n));
  items.push(check("cuped", null, "CUPED", cupedNote ? cupedNote.replace(/^CUPED:\s*/i, "")
    : cupedAsked ? "asked for" : "off: the intervals use the values alone (turn it on to narrow them with the pre-exposure value)"));
  // the notes the checks above do not already say
  const said = (n) => n === cupedNote || /^(sample ratio|SAMPLE RATIO MISMATCH)/.test(n);
  target.append(h("ul", { class: "checks" }, items), notes({ notes: (answer.notes || []).filter((n) => !said(n)) }) || "");
  const mismatch = rows.some((r) => r.srm_mismatch === true);
  target.dataset.srm = srm ? (mismatch ? "fail" : "pass") : "";
}
