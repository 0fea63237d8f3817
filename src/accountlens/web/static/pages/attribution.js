// `/attribution`: who earned the renewals (expansions, churns, …): the credit of each role, unit,
// user, feature or stage under several credit models side by side, with their bootstrap
// intervals (docs/attribution.md), and the rule set version in force. One request per model,
// sent together; a model that fails says so without hiding the others.
import { h, fmt, panel, fill, notes, table, csvButton, label, empty, missing, userLink, select, segmented } from "../ui.js";
import { chartBox, plot, COLORS } from "../charts.js";
import { pageHeader, toolbar, asOfControl, choicesOf } from "./common.js";
import * as api from "../api.js";

const PANEL = "attribution"; // api/dashboard.py
const RULES = "/api/v1/attribution/rules";
// The models compared when the reader has chosen none: the classic positional ones, the
// role-weighted rules and the two data-driven ones.
const DEFAULT_MODELS = ["first_touch", "last_touch", "linear", "time_decay", "u_shaped", "role_weighted", "markov", "shapley"];
const NO_TOUCH_LABEL = "(no touches)"; // analysis/credit_models.py NO_TOUCH (by user: no user id)
// Bars per model in the chart; the table has every row.
const CHART_ROWS = 15;

export default {
  render(ctx) {
    const outcome = ctx.get("outcome", "renewal");
    const by = ctx.get("by", "role");
    const value = ctx.get("value", "count");
    const asked = ctx.get("models");
    const models = asked === null ? DEFAULT_MODELS : asked.split(",").filter(Boolean);

    const rules = h("p", { class: "muted rules-version", id: "rules-version", role: "status" }, "Rules: …");
    ctx.main.append(
      pageHeader(ctx, "Attribution", { subtitle: "Who and what earned each outcome: credit by role, unit, user, feature or stage under several credit models, with 95 % intervals." }),
      toolbar(asOfControl(ctx),
        choiceSelect(ctx, "outcome", "Outcome", outcome, "renewal"),
        choiceSelect(ctx, "by", "Credit by", by, "role"),
        valueSwitch(ctx, value),
        modelChoice(ctx, models)),
      rules,
    );
    ruleSet(ctx, rules);

    const dimension = label(by).toLowerCase();
    const credit = panel(`Credit for ${outcome} by ${dimension}, per model`, { wide: true, id: "panel-credit",
      description: value === "arr"
        ? "Each outcome is worth its ARR change; every model shares it out over the touches before it. Bars show each model's credit, whiskers its interval."
        : "Each outcome is worth 1; every model shares it out over the touches before it. Bars show each model's credit, whiskers its interval." });
    ctx.main.append(credit.root);
    if (!models.length) {
      credit.body.append(empty("Choose at least one model."));
      return;
    }
    const params = { outcome, by, value };
    const ask = (model, extra = {}) => ctx.query(PANEL, { ...params, model, ...extra });
    fill(credit.body, () => Promise.allSettled(models.map((m) => ask(m))), async (settled) => {
      const results = [];
      const failed = [];
      settled.forEach((s, i) => (s.status === "fulfilled" ? results.push([models[i], s.value]) : failed.push([models[i], s.reason])));
      if (!results.length) throw failed[0][1];
      credit.body.dataset.models = results.map(([m]) => m).join(",");
      if (failed.length) {
        credit.body.append(h("div", { class: "error", role: "alert" },
          h("strong", {}, `${failed.length === 1 ? "One model" : `${failed.length} models`} could not be computed: `),
          failed.map(([m, e], i) => [i ? "; " : "", `${label(m)}: ${e.message}`])));
      }
      const rows = creditRows(results, by);
      if (!rows.length) {
        credit.body.append(empty(`No ${outcome} outcomes to credit before this day.`), notesOf(results));
        return;
      }
      const money = value === "arr";
      const box = chartBox(`Grouped bars: credit for ${outcome} by ${dimension} under ${results.length} models (${results.map(([m]) => label(m)).join(", ")}), with intervals`,
        { height: 340 });
      credit.body.append(box);
      credit.body.append(table(rows, columnsFor(results, by, money), { caption: `Credit by ${dimension} per model`, id: "credit-table", limit: 100 }),
        notesOf(results));
      await drawCredit(box, rows.slice(0, CHART_ROWS), results, money);
      if (rows.length > CHART_ROWS) box.after(h("p", { class: "muted" }, `The ${CHART_ROWS} with the most credit are drawn; the table has all ${fmt.int(rows.length)}.`));
    }, { signal: ctx.signal });
    // every chosen model's rows, one after the other (the `model` column tells them apart)
    credit.actions.append(csvButton(`attribution-${outcome}-by-${by}`, async () => {
      const all = await Promise.all(models.map((m) => ask(m, { limit: 100000 })));
      return { as_of: all[0].as_of, columns: all[0].columns, rows: all.flatMap((r) => r.rows) };
    }));
  },
};

// What each outcome is worth: 1 (count) or its ARR change.
function valueSwitch(ctx, value) {
  const box = segmented("Value", ["count", "arr"], value, (v) => ctx.set({ value: v === "count" ? null : v }), { id: "control-value" });
  box.querySelector('label[for="control-value-arr"]').textContent = "ARR";
  return box;
}

// A select whose choices come from the request's type (api/dashboard.py), the value in the URL.
function choiceSelect(ctx, control, text, value, fallback) {
  const slot = h("div", { class: "control-slot" }, select(text, [value], value, () => {}, { id: `control-${control}` }));
  choicesOf(PANEL, control).then((choices) => {
    if (!choices.length) return;
    slot.replaceChildren(select(text, choices, value, (v) => ctx.set({ [control]: v === fallback ? null : v }), { id: `control-${control}` }));
  }).catch(() => {});
  return slot;
}

// Checkboxes of the models to compare (all the request's models); `models=` in the URL.
function modelChoice(ctx, chosen) {
  const box = h("fieldset", { class: "model-choice", id: "control-models" }, h("legend", {}, "Models"));
  const draw = (choices) => {
    box.replaceChildren(h("legend", {}, "Models"), ...choices.map((m) => {
      const id = `model-${m}`;
      return h("span", { class: "model-option" },
        h("input", { type: "checkbox", id, name: "models", value: m, checked: chosen.includes(m), onchange: () => {
          const next = [...box.querySelectorAll("input:checked")].map((i) => i.value);
          const same = next.length === DEFAULT_MODELS.length && next.every((x) => DEFAULT_MODELS.includes(x));
          ctx.set({ models: same ? null : next.join(",") || "," });
        } }),
        h("label", { for: id }, label(m)));
    }));
  };
  draw(chosen);
  choicesOf(PANEL, "model").then((choices) => { if (choices.length) draw(choices); }).catch(() => {});
  return box;
}

// The rule set in force: the active version and who activated it when (its history), or the
// built-in defaults when no version is active.
function ruleSet(ctx, target) {
  const said = (text) => { if (!ctx.signal.aborted) target.textContent = text; };
  api.getJSON(RULES, {}, { signal: ctx.signal }).then(async (versions) => {
    const active = (versions || []).find((v) => v.active);
    target.dataset.version = active ? active.version : "";
    if (!active) { said("Rules: the built-in defaults (no rule set version is active)."); return; }
    const name = active.name ? ` (${active.name})` : "";
    const history = await api.getJSON(`${RULES}/history`, { version: active.version }, { signal: ctx.signal }).catch(() => []);
    const activation = history.filter((c) => c.action === "activate").sort((a, b) => (a.at < b.at ? -1 : 1)).pop();
    const how = activation
      ? `activated by ${activation.actor} on ${fmt.time(activation.at)} UTC`
      : `active since ${fmt.time(active.activated_at)} UTC`;
    said(`Rules: version ${active.version}${name}, ${how}.${active.note ? ` ${active.note}` : ""}`);
  }).catch((error) => said(`Rules: could not be read (${error.message}).`));
}

// The key of a result row in the chosen dimension, and how it is shown.
function keyOf(row, by) {
  const key = by === "user" ? row.user_id : row[by];
  return missing(key) ? NO_TOUCH_LABEL : String(key);
}

// One row per value of the dimension: each model's credit, interval and share beside it.
function creditRows(results, by) {
  const byKey = new Map();
  for (const [model, result] of results) {
    for (const r of result.rows) {
      const key = keyOf(r, by);
      if (!byKey.has(key)) {
        byKey.set(key, { key, user_id: r.user_id ?? null, name: by === "user" ? (r.user_name || r.user_id || NO_TOUCH_LABEL) : key,
          touches: r.touches, journeys: r.journeys, total: 0 });
      }
      const row = byKey.get(key);
      row[model] = r.credit;
      row[`${model}:low`] = r.ci_low;
      row[`${model}:high`] = r.ci_high;
      row[`${model}:share`] = r.share;
      row.total += r.credit || 0;
    }
  }
  return [...byKey.values()].sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
}

function columnsFor(results, by, money) {
  const number = money ? fmt.money : fmt.num;
  const dimension = by === "user"
    ? { key: "name", label: "User", cell: (r) => (r.user_id ? userLink(r.user_id, r.name) : r.name) }
    : { key: "name", label: label(by), format: fmt.text };
  return [
    dimension,
    { key: "touches", label: "Touches", numeric: true, format: fmt.int },
    { key: "journeys", label: "Journeys", numeric: true, format: fmt.int },
    ...results.map(([model]) => ({
      key: model, label: label(model), numeric: true,
      cell: (r) => {
        if (missing(r[model])) return "–";
        const low = r[`${model}:low`];
        const high = r[`${model}:high`];
        const interval = missing(low) || missing(high) ? "" : ` (${number(low)}–${number(high)})`;
        const share = r[`${model}:share`];
        return h("span", { title: missing(share) ? null : `${fmt.pct(share)} of the credit` }, `${number(r[model])}${interval}`);
      },
    })),
  ];
}

async function drawCredit(box, rows, results, money) {
  const x = rows.map((r) => r.name);
  const traces = results.map(([model], i) => {
    const credit = rows.map((r) => (missing(r[model]) ? null : r[model]));
    const withInterval = rows.some((r) => !missing(r[`${model}:low`]));
    return {
      type: "bar", name: label(model), x, y: credit, marker: { color: COLORS[i % COLORS.length] },
      error_y: withInterval ? {
        type: "data", symmetric: false, thickness: 1.2, width: 3, color: "#1d2330",
        array: rows.map((r, j) => (missing(r[`${model}:high`]) || missing(credit[j]) ? 0 : r[`${model}:high`] - credit[j])),
        arrayminus: rows.map((r, j) => (missing(r[`${model}:low`]) || missing(credit[j]) ? 0 : credit[j] - r[`${model}:low`])),
      } : undefined,
      customdata: rows.map((r) => [r[`${model}:low`], r[`${model}:high`]]),
      hovertemplate: `${label(model)}<br>%{x}: %{y:${money ? ",.0f" : ".2f"}} (%{customdata[0]:${money ? ",.0f" : ".2f"}}–%{customdata[1]:${money ? ",.0f" : ".2f"}})<extra></extra>`,
    };
  });
  await plot(box, traces, { barmode: "group", bargap: 0.2, bargroupgap: 0.05,
    yaxis: { title: { text: money ? "credit (ARR)" : "credit (outcomes)" }, zeroline: true, rangemode: "tozero" },
    xaxis: { type: "category" }, legend: { orientation: "h", y: -0.25 } });
}

// The notes of every model: those all share once, the others under their model's name.
function notesOf(results) {
  const counts = new Map();
  for (const [, r] of results) for (const n of new Set(r.notes || [])) counts.set(n, (counts.get(n) || 0) + 1);
  const shared = [...counts.keys()].filter((n) => counts.get(n) === results.length);
  const own = results.flatMap(([m, r]) => (r.notes || []).filter((n) => counts.get(n) < results.length).map((n) => `${label(m)}: ${n}`));
  return notes({ notes: [...shared, ...own] }) || "";
}
