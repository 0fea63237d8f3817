// What the pages share: their heading, the toolbar (as-of, filters), filter values.
import { h, field, select, segmented, label } from "../ui.js";
import * as api from "../api.js";

export function pageHeader(ctx, title, { subtitle = null, actions = [] } = {}) {
  ctx.setTitle(title);
  return h("div", { class: "page-head" },
    h("div", {}, h("h1", { tabindex: "-1" }, title), subtitle ? h("p", { class: "subtitle muted" }, subtitle) : null),
    actions.length ? h("div", { class: "page-actions" }, actions) : null);
}

export function toolbar(...controls) {
  return h("form", { class: "toolbar", role: "search", "aria-label": "Page options", onsubmit: (e) => e.preventDefault() }, controls);
}

// The day every number on the page is as of; empty: the latest day with activity.
export function asOfControl(ctx) {
  const chosen = ctx.get("as_of");
  const shown = chosen || ctx.defaultAsOf() || "";
  const input = h("input", { type: "date", id: "as-of", name: "as_of", value: shown, max: ctx.defaultAsOf(),
    onchange: (e) => { if (!e.target.value || /^\d{4}-\d{2}-\d{2}$/.test(e.target.value)) ctx.set({ as_of: e.target.value || null }); } });
  const latest = h("button", { type: "button", class: "link-button", disabled: !chosen, onclick: () => ctx.set({ as_of: null }) }, "Latest");
  return h("div", { class: "field as-of" }, h("label", { for: "as-of" }, "As of"), h("div", { class: "inline" }, input, latest));
}

// Choices of a panel's control (from the request's type, served with the panel).
export async function choicesOf(panelId, control) {
  const declaration = await api.panel(panelId);
  return (declaration.choices && declaration.choices[control]) || [];
}

// A switch for one of a panel's controls; the value lives in the query string under `key`.
export function controlSwitch(ctx, panelId, control, text, { key = control, fallback, asSelect = false } = {}) {
  const box = h("div", { class: "control-slot" });
  choicesOf(panelId, control).then((choices) => {
    if (!choices.length) return;
    const value = ctx.get(key, fallback);
    const onChange = (v) => ctx.set({ [key]: v === fallback ? null : v });
    box.replaceChildren(asSelect || choices.length > 5
      ? select(text, choices, value, onChange, { id: `control-${key}` })
      : segmented(text, choices, value, onChange, { id: `control-${key}` }));
  }).catch(() => {});
  return box;
}

const facetCache = new Map();

// The values an account attribute takes in the workspace (the metric at that level).
export function facetValues(level) {
  const key = `${api.workspace()}:${level}`;
  if (!facetCache.has(key)) {
    const promise = api.query("facets", { level }).then((result) => {
      const values = result.rows.map((r) => r[level]).filter((v) => v !== null && v !== undefined && v !== "(none)");
      return [...new Set(values.map(String))].sort();
    });
    promise.catch(() => facetCache.delete(key));
    facetCache.set(key, promise);
  }
  return facetCache.get(key);
}

export const FILTER_LABELS = {
  industry: "Industry", region: "Region", plan: "Plan", size_band: "Size band", maturity: "Maturity",
  deployment_scale: "Deployment scale", owner: "Owner", grade: "Health",
};

// A filter by an account attribute, its values from the workspace.
export function facetSelect(ctx, key) {
  const value = ctx.get(key, "");
  const id = `filter-${key}`;
  const onChange = (v) => ctx.set({ [key]: v || null });
  const initial = value ? [value] : [];
  const box = select(FILTER_LABELS[key] || label(key), initial, value, onChange, { id, anyLabel: "All" });
  facetValues(key).then((values) => {
    const control = box.querySelector("select");
    if (!control) return;
    const all = value && !values.includes(value) ? [value, ...values] : values;
    control.replaceChildren(h("option", { value: "" }, "All"),
      ...all.map((v) => h("option", { value: v, selected: v === value }, v)));
  }).catch(() => {});
  return box;
}

export function filterValues(ctx, keys) {
  const out = {};
  for (const key of keys) {
    const value = ctx.get(key);
    if (value) out[key] = value;
  }
  return out;
}

export function textFilter(ctx, key, text, { type = "text", placeholder = null, delay = 350 } = {}) {
  let timer = null;
  const input = h("input", { type, id: `filter-${key}`, name: key, value: ctx.get(key, ""), placeholder, autocomplete: "off",
    oninput: (e) => {
      clearTimeout(timer);
      const value = e.target.value.trim();
      timer = setTimeout(() => ctx.set({ [key]: value || null }, { replace: true }), delay);
    } });
  return field(text, input);
}

export function checkbox(ctx, key, text) {
  const id = `filter-${key}`;
  return h("div", { class: "field check" },
    h("input", { type: "checkbox", id, name: key, checked: ctx.get(key) === "true", onchange: (e) => ctx.set({ [key]: e.target.checked ? "true" : null }) }),
    h("label", { for: id }, text));
}

export function activeFilters(ctx, keys) {
  const set = keys.filter((k) => ctx.get(k));
  if (!set.length) return null;
  const clear = {};
  for (const k of set) clear[k] = null;
  return h("p", { class: "active-filters" },
    `Filtered by ${set.map((k) => `${(FILTER_LABELS[k] || label(k)).toLowerCase()} = ${ctx.get(k)}`).join(", ")}. `,
    h("button", { type: "button", class: "link-button", onclick: () => ctx.set(clear) }, "Clear filters"));
}

export function grid(...panels) {
  return h("div", { class: "grid" }, panels.map((p) => p.root || p));
}
