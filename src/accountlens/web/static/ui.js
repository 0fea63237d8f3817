// Building blocks of the pages: elements, formatting, panels with loading and error states,
// tables (sortable, CSV download), controls with labels.

// h("a", {href: "/", class: "x", onclick: fn}, "text", child, ...)
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

// --- formatting ----------------------------------------------------------------------------
const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const twoPlaces = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

export const missing = (v) => v === null || v === undefined || (typeof v === "number" && Number.isNaN(v));
export const fmt = {
  int: (v) => (missing(v) ? "–" : whole.format(v)),
  num: (v) => (missing(v) ? "–" : Math.abs(v) >= 100 ? whole.format(v) : twoPlaces.format(v)),
  compact: (v) => (missing(v) ? "–" : compact.format(v)),
  money: (v) => (missing(v) ? "–" : whole.format(v)),
  pct: (v) => (missing(v) ? "–" : `${(v * 100).toFixed(Math.abs(v) < 0.1 && v !== 0 ? 1 : 0)}%`),
  hours: (v) => (missing(v) ? "–" : `${twoPlaces.format(v)} h`),
  days: (v) => (missing(v) ? "–" : `${twoPlaces.format(v)} d`),
  date: (v) => (missing(v) ? "–" : String(v).slice(0, 10)),
  time: (v) => (missing(v) ? "–" : String(v).replace("T", " ").slice(0, 16)),
  bool: (v) => (missing(v) ? "–" : v ? "yes" : "no"),
  text: (v) => {
    if (missing(v)) return "–";
    if (Array.isArray(v)) return v.map((x) => (typeof x === "object" ? describe(x) : String(x))).join(", ");
    if (typeof v === "object") return describe(v);
    return String(v);
  },
};

function describe(object) {
  if (object && "feature" in object && "contribution" in object) {
    return `${label(object.feature)} ${object.contribution >= 0 ? "+" : ""}${twoPlaces.format(object.contribution)}`;
  }
  return Object.entries(object).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
}

export function label(name) {
  const text = String(name).replaceAll("_", " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// How a column is shown, from its name and type (GET results declare the type).
export function formatterFor(name, type) {
  if (/(^|_)(share|rate|utilization|confidence|support|probability|retention|conversion|improvement)$/.test(name)) return fmt.pct;
  if (/(^|_)arr$|^arr_|cost_of_delay|_arr$/.test(name)) return fmt.money;
  if (/_hours$/.test(name)) return fmt.hours;
  if (/_days$/.test(name) && type !== "integer") return fmt.days;
  if (type === "integer") return fmt.int;
  if (type === "number") return fmt.num;
  if (type === "date") return fmt.date;
  if (type === "timestamp") return fmt.time;
  if (type === "boolean") return fmt.bool;
  return fmt.text;
}

// --- links -----------------------------------------------------------------------------------
// Set by app.js: the href of an app page with the state that travels (workspace, as-of).
let linker = (path) => path;
export function setLinker(fn) {
  linker = fn;
}
export function href(path, params = {}) {
  return linker(path, params);
}
export function link(path, text, params = {}, attrs = {}) {
  return h("a", { href: href(path, params), ...attrs }, text);
}
export const accountLink = (id, name) => (missing(id) ? "–" : link(`/accounts/${encodeURIComponent(id)}`, name || id));
export const userLink = (id, name) => (missing(id) ? "–" : link(`/users/${encodeURIComponent(id)}`, name || id));

// --- panels ----------------------------------------------------------------------------------
let panelCount = 0;

// A titled section with a body that shows "Loading…", then its content or the API's error.
export function panel(title, { wide = false, id = null, description = null, actions = [] } = {}) {
  const headingId = `panel-title-${++panelCount}`;
  const body = h("div", { class: "panel-body" });
  const meta = h("p", { class: "panel-meta muted" });
  const root = h("section", { class: `panel${wide ? " wide" : ""}`, "aria-labelledby": headingId, id },
    h("div", { class: "panel-head" }, h("h2", { id: headingId }, title), h("div", { class: "panel-actions" }, actions)),
    description ? h("p", { class: "muted panel-description" }, description) : null,
    body, meta);
  return { root, body, meta, actions: root.querySelector(".panel-actions") };
}

export function loading(target, text = "Loading…") {
  target.setAttribute("aria-busy", "true");
  target.replaceChildren(h("p", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), ` ${text}`));
}

export function showError(target, error) {
  target.removeAttribute("aria-busy");
  const status = error && error.status ? ` (HTTP ${error.status})` : "";
  target.replaceChildren(h("div", { class: "error", role: "alert" },
    h("strong", {}, "Could not load this"), status, ": ", (error && error.message) || String(error)));
}

const SLOW_MS = 1500;

// Fill `target` from `work()` (a promise of data) with `draw(data)`; a spinner meanwhile, which
// says it is still computing once it takes long (first requests after new data), and the
// API's message on failure. Ignores results of a page that has been left (`signal`).
export async function fill(target, work, draw, { signal, text } = {}) {
  loading(target, text);
  const slow = setTimeout(() => {
    const status = target.querySelector(".loading");
    if (status) status.lastChild.textContent = " Computing… (the first request after new data takes longer)";
  }, SLOW_MS);
  try {
    const data = await work();
    if (signal && signal.aborted) return null;
    target.removeAttribute("aria-busy");
    target.replaceChildren();
    await draw(data);
    return data;
  } catch (error) {
    if ((signal && signal.aborted) || error.name === "AbortError") return null;
    showError(target, error);
    return null;
  } finally {
    clearTimeout(slow);
  }
}

// The result's notes a reader needs (the "showing N of M" ones are said by the table).
export function notes(result) {
  const shown = (result.notes || []).filter((n) => !/^showing |^no rows from offset/.test(n));
  if (!shown.length) return null;
  return h("ul", { class: "notes" }, shown.map((n) => h("li", {}, n)));
}

export function kpi(title, value, { sub = null, raw = null, key = null, tone = null } = {}) {
  return h("div", { class: `card${tone ? ` tone-${tone}` : ""}`, dataset: { key: key || title, value: raw === null || raw === undefined ? "" : raw } },
    h("div", { class: "label" }, title), h("div", { class: "value" }, value), sub ? h("div", { class: "sub muted" }, sub) : null);
}

export function empty(text) {
  return h("p", { class: "empty muted" }, text);
}

// --- controls --------------------------------------------------------------------------------
let controlCount = 0;
export function field(text, control) {
  const id = control.id || `control-${++controlCount}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, text), control);
}

export function select(text, options, value, onChange, { id = null, anyLabel = null } = {}) {
  const choices = anyLabel === null ? options : [["", anyLabel], ...options];
  const control = h("select", { id, name: id, onchange: (e) => onChange(e.target.value) },
    choices.map((option) => {
      const [val, shown] = Array.isArray(option) ? option : [option, label(option)];
      return h("option", { value: val, selected: String(val) === String(value ?? "") }, shown);
    }));
  return field(text, control);
}

// A segmented switch (radio buttons) for a few choices.
export function segmented(text, options, value, onChange, { id }) {
  const name = id;
  return h("fieldset", { class: "segmented", id },
    h("legend", {}, text),
    options.map((option) => {
      const optionId = `${id}-${option}`;
      return h("span", { class: "segment" },
        h("input", { type: "radio", name, id: optionId, value: option, checked: option === value, onchange: () => onChange(option) }),
        h("label", { for: optionId }, label(option)));
    }));
}

// --- tables ----------------------------------------------------------------------------------
// columns: [{key, label, format(value, row), cell(row) -> node, numeric, sortable}]
// `sort`: {key, descending, onSort(key, descending)} (sorting by the server or the page), or
// null: the table sorts its rows itself when a header is pressed.
export function table(rows, columns, { caption = null, sort = null, limit = 200, rowClass = null, id = null } = {}) {
  let order = sort ? null : { key: null, descending: false };
  let shown = limit;
  const wrap = h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": `${caption || "Rows"} (table)` });
  const render = () => {
    let data = rows;
    if (order && order.key) {
      const k = order.key;
      data = [...rows].sort((a, b) => compare(a[k], b[k]) * (order.descending ? -1 : 1));
    }
    const current = sort || order;
    const head = h("tr", {}, columns.map((c) => {
      const active = current && current.key === c.key;
      const ariaSort = active ? (current.descending ? "descending" : "ascending") : null;
      const canSort = c.sortable !== false && (!sort || (sort.columns ? sort.columns.includes(c.key) : true));
      const text = c.label ?? label(c.key);
      const content = canSort
        ? h("button", { type: "button", class: "sort", onclick: () => {
          const descending = active ? !current.descending : Boolean(c.numeric);
          if (sort) sort.onSort(c.key, descending);
          else { order = { key: c.key, descending }; render(); }
        } }, text, h("span", { class: "arrow", "aria-hidden": "true" }, active ? (current.descending ? " ▼" : " ▲") : ""))
        : text;
      return h("th", { scope: "col", class: c.numeric ? "num" : null, "aria-sort": ariaSort }, content);
    }));
    const body = h("tbody", {}, data.slice(0, shown).map((row) => h("tr", { class: rowClass ? rowClass(row) : null },
      columns.map((c) => {
        const value = row[c.key];
        const content = c.cell ? c.cell(row) : (c.format || fmt.text)(value, row);
        return h("td", { class: c.numeric ? "num" : null, dataset: missing(value) || typeof value === "object" ? {} : { value } }, content);
      }))));
    if (!data.length) body.append(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "No rows.")));
    const parts = [h("table", { id }, caption ? h("caption", { class: "sr-only" }, caption) : null, h("thead", {}, head), body)];
    if (data.length > shown) {
      parts.push(h("button", { type: "button", class: "more", onclick: () => { shown += limit * 5; render(); } },
        `Show more (${fmt.int(data.length - shown)} more rows)`));
    }
    wrap.replaceChildren(...parts);
  };
  render();
  return wrap;
}

function compare(a, b) {
  if (missing(a)) return missing(b) ? 0 : 1;
  if (missing(b)) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b));
}

// Columns holding a user id: shown as links to the user's page.
const USER_COLUMNS = ["user_id", "champion", "champion_user_id", "most_connected_user"];

// Columns of a result, with formats from their names and types; `skip` leaves some out.
export function columnsOf(result, { skip = [], cells = {} } = {}) {
  const names = result.columns.map((c) => c.name);
  const out = [];
  for (const { name, type } of result.columns) {
    if (skip.includes(name)) continue;
    if (name === "account_name" && names.includes("account_id")) continue;
    if (name === "account_id" && names.includes("account_name")) {
      out.push({ key: "account_name", label: "Account", cell: (r) => accountLink(r.account_id, r.account_name) });
      continue;
    }
    if (cells[name]) { out.push({ key: name, ...cells[name] }); continue; }
    if (USER_COLUMNS.includes(name)) { out.push({ key: name, label: label(name), cell: (r) => userLink(r[name]) }); continue; }
    const numeric = type === "integer" || type === "number";
    out.push({ key: name, numeric, format: formatterFor(name, type) });
  }
  return out;
}

// --- CSV -------------------------------------------------------------------------------------
function csvCell(value) {
  if (missing(value)) return "";
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCSV(rows, names) {
  const lines = [names.map(csvCell).join(",")];
  for (const row of rows) lines.push(names.map((n) => csvCell(row[n])).join(","));
  return `${lines.join("\r\n")}\r\n`;
}

// A button that downloads a result as CSV; `fetchAll()` gives the result with every row. Not
// shown to roles without exports (viewer, csm: docs/governance.md; app.js sets the flag).
export function csvButton(filename, fetchAll) {
  if (document.body.dataset.exports === "false") return h("span", { class: "no-export" });
  const button = h("button", { type: "button", class: "csv", onclick: async () => {
    button.disabled = true;
    const before = button.textContent;
    button.textContent = "Preparing…";
    try {
      const result = await fetchAll();
      const names = result.columns.map((c) => c.name);
      const blob = new Blob([toCSV(result.rows, names)], { type: "text/csv;charset=utf-8" });
      const url = URL.createObjectURL(blob);
      const a = h("a", { href: url, download: `${filename}-${result.as_of}.csv` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      button.title = error.message;
    } finally {
      button.disabled = false;
      button.textContent = before;
    }
  } }, "Download CSV");
  return button;
}
