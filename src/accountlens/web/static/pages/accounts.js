// `/accounts`: every account, filtered, searched, sorted and paged by the server (the
// `accounts` analysis), so that thousands of accounts stay fast.
import { h, fmt, panel, fill, notes, table, csvButton, accountLink, label, missing } from "../ui.js";
import * as api from "../api.js";
import { sparkline } from "../charts.js";
import { pageHeader, toolbar, asOfControl, facetSelect, filterValues, activeFilters, textFilter, checkbox, choicesOf, FILTER_LABELS } from "./common.js";
import { select } from "../ui.js";

const FACETS = ["industry", "region", "plan", "size_band", "maturity", "deployment_scale"];
const FILTERS = [...FACETS, "grade", "owner", "q", "customers_only"];
const PAGE_SIZE = 50;

export default {
  render(ctx) {
    const page = Math.max(1, Number.parseInt(ctx.get("page", "1"), 10) || 1);
    const sort = ctx.get("sort", "arr");
    const descending = ctx.get("descending", sort === "arr" ? "true" : "false") === "true";
    const filters = filterValues(ctx, FILTERS);
    const gradeBox = h("div", { class: "control-slot" }, select(FILTER_LABELS.grade, [], ctx.get("grade", ""), () => {}, { id: "filter-grade", anyLabel: "All" }));
    choicesOf("accounts", "grade").then((grades) => {
      gradeBox.replaceChildren(select(FILTER_LABELS.grade, grades, ctx.get("grade", ""), (v) => ctx.set({ grade: v || null }), { id: "filter-grade", anyLabel: "All" }));
    }).catch(() => {});
    ctx.main.append(
      pageHeader(ctx, "Accounts"),
      toolbar(
        asOfControl(ctx),
        textFilter(ctx, "q", "Search name or domain", { type: "search" }),
        ...FACETS.map((k) => facetSelect(ctx, k)),
        gradeBox,
        textFilter(ctx, "owner", "Owner"),
        checkbox(ctx, "customers_only", "Customers only"),
      ),
      activeFilters(ctx, FILTERS) || "",
    );
    const list = panel("Accounts", { wide: true, id: "panel-accounts" });
    ctx.main.append(list.root);
    const params = { ...filters, sort, descending, offset: (page - 1) * PAGE_SIZE || null, limit: PAGE_SIZE };
    list.actions.append(csvButton("accounts", () => api.allRows("accounts", { ...filters, sort, descending, as_of: ctx.get("as_of") })));
    fill(list.body, () => ctx.query("accounts", params), (result) => {
      const total = result.total_rows ?? result.rows.length + (page - 1) * PAGE_SIZE;
      const first = result.rows.length ? (page - 1) * PAGE_SIZE + 1 : 0;
      const last = (page - 1) * PAGE_SIZE + result.rows.length;
      const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
      const sortable = new Set(result.columns.map((c) => c.name));
      const columns = [
        { key: "account_name", label: "Account", cell: (r) => h("div", {}, accountLink(r.account_id, r.account_name), r.domain ? h("div", { class: "muted small" }, r.domain) : "") },
        { key: "industry", label: "Industry" },
        { key: "region", label: "Region" },
        { key: "plan", label: "Plan" },
        { key: "owner", label: "Owner" },
        { key: "arr", label: "ARR", numeric: true, format: fmt.money },
        { key: "seats", label: "Seats", numeric: true, format: fmt.int },
        { key: "mau", label: "MAU", numeric: true, format: fmt.int },
        { key: "seat_utilization", label: "Utilization", numeric: true, cell: (r) => utilization(r.seat_utilization) },
        { key: "health_score", label: "Health", numeric: true, cell: health },
        { key: "renewal_date", label: "Renewal", cell: (r) => (missing(r.renewal_date) ? "–" : h("div", {}, fmt.date(r.renewal_date), h("div", { class: "muted small" }, `in ${fmt.int(r.days_to_renewal)} d`))) },
        { key: "activity", label: "Active users, 12 weeks", sortable: false, cell: (r) => sparkline(r.activity, `${r.account_name}: weekly active users over 12 weeks, ${(r.activity || []).join(", ")}`) },
        { key: "last_active_day", label: "Last active", format: fmt.date },
      ];
      list.body.append(
        h("p", { class: "paging-status", role: "status", "aria-live": "polite" }, total ? `Accounts ${fmt.int(first)}–${fmt.int(last)} of ${fmt.int(total)}` : "No account matches."),
        table(result.rows, columns, {
          caption: "Accounts", id: "accounts-table", limit: PAGE_SIZE,
          sort: { key: sort, descending, columns: [...sortable].filter((c) => c !== "activity"), onSort: (key, desc) => ctx.set({ sort: key, descending: desc ? "true" : "false" }) },
          rowClass: (r) => (r.customer ? null : "prospect"),
        }),
        pager(ctx, page, pages),
        notes(result) || "",
      );
    }, { signal: ctx.signal });
  },
};

function utilization(value) {
  if (missing(value)) return "–";
  const width = Math.min(100, Math.round(value * 100));
  return h("div", { class: "meter-cell" }, h("span", { class: "meter", "aria-hidden": "true" }, h("span", { style: `width:${width}%`, class: value >= 0.95 ? "full" : value < 0.3 ? "low" : null })), fmt.pct(value));
}

function health(row) {
  const grade = row.health_grade || "unknown";
  const trend = row.health_trend;
  let arrow = "";
  if (!missing(trend)) {
    const word = trend > 0.5 ? "up" : trend < -0.5 ? "down" : "flat";
    arrow = h("span", { class: `trend trend-${word}`, title: `${trend > 0 ? "+" : ""}${fmt.num(trend)} in 30 days` },
      h("span", { "aria-hidden": "true" }, word === "up" ? "▲" : word === "down" ? "▼" : "▶"),
      h("span", { class: "sr-only" }, `trend ${word}`), ` ${trend > 0 ? "+" : ""}${fmt.num(trend)}`);
  }
  return h("div", { class: "health-cell" }, h("span", { class: `chip grade-${grade}` }, missing(row.health_score) ? label(grade) : `${fmt.int(row.health_score)} ${grade}`), " ", arrow);
}

function pager(ctx, page, pages) {
  return h("nav", { class: "pager", "aria-label": "Pages of accounts" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => ctx.set({ page: page - 1 > 1 ? page - 1 : null }) }, "← Previous"),
    h("span", {}, `Page ${page} of ${pages}`),
    h("button", { type: "button", disabled: page >= pages, onclick: () => ctx.set({ page: page + 1 }) }, "Next →"));
}
