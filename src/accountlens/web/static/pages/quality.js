// `/quality`: can the data be trusted? Tracking-plan violations recorded at load, anomaly
// findings (instrumentation breaks, quiet accounts, spikes, stale sources) and reconciliation
// findings between the event stream and CRM/billing (docs/quality.md). Each panel fails alone.
import { h, fmt, panel, fill, notes, table, csvButton, accountLink, label, empty, missing } from "../ui.js";
import { pageHeader, toolbar, asOfControl, grid } from "./common.js";
import * as api from "../api.js";

const VIOLATIONS = "/api/v1/plan/violations";
const ANOMALIES = "/api/v1/analyses/anomalies";
const RECONCILE = "/api/v1/analyses/reconcile";

export default {
  render(ctx) {
    ctx.main.append(
      pageHeader(ctx, "Data quality", { subtitle: "Tracking-plan violations, anomalies in the event stream, and what disagrees with CRM and billing." }),
      toolbar(asOfControl(ctx)),
    );
    const violations = panel("Tracking-plan violations", { wide: true, id: "panel-violations",
      description: "Events that broke the tracking plan when they were loaded, by event, library and rule." });
    const anomalies = panel("Anomalies", { wide: true, id: "panel-anomalies",
      description: "Instrumentation breaks, quiet accounts, spikes and stale sources, each with what was expected and what was seen." });
    const reconcile = panel("Reconciliation", { wide: true, id: "panel-reconcile",
      description: "Where the event stream, accounts, CRM and billing disagree." });
    ctx.main.append(grid(violations, anomalies, reconcile));

    // Violations are counted over every load, not as of a day; the plan's versions say whether
    // there is one (an empty list, not a 404 that the console would report).
    const plan = api.getJSON("/api/v1/plan/versions", {}, { signal: ctx.signal })
      .then((versions) => versions.reduce((a, b) => (!a || b.version > a.version ? b : a), null));
    fill(violations.body, () => Promise.all([plan, api.getJSON(VIOLATIONS, {}, { signal: ctx.signal })]), ([current, rows]) => {
      if (!current) { violations.body.append(empty("No tracking plan: import one (accountlens plan import FILE).")); return; }
      const total = rows.reduce((n, r) => n + r.violations, 0);
      violations.body.dataset.total = total;
      violations.body.append(h("p", { class: "muted" }, `Tracking plan version ${current.version}, by ${current.changed_by}, ${fmt.time(current.changed_at)} UTC.`));
      if (!rows.length) { violations.body.append(empty("No violations.")); return; }
      const columns = [
        { key: "event", label: "Event", format: fmt.text },
        { key: "library", label: "Library", format: (v, r) => (missing(v) ? "–" : `${v}${r.library_version ? ` ${r.library_version}` : ""}`) },
        { key: "rule", label: "Rule", format: fmt.text },
        { key: "property", label: "Property", format: fmt.text },
        { key: "violations", label: "Violations", numeric: true, format: fmt.int },
        { key: "events", label: "Events", numeric: true, format: fmt.int },
        { key: "quarantined", label: "Quarantined", numeric: true, format: fmt.int },
      ];
      violations.body.append(h("p", {}, `${fmt.int(total)} violation${total === 1 ? "" : "s"}:`),
        table(rows, columns, { caption: "Tracking-plan violations", id: "violations-table" }));
      const names = ["event", "library", "library_version", "rule", "property", "violations", "events", "quarantined"];
      violations.actions.append(csvButton("plan-violations", () => api.getJSON(VIOLATIONS, { limit: 100000 })
        .then((all) => ({ as_of: `v${current.version}`, columns: names.map((name) => ({ name })), rows: all }))));
    }, { signal: ctx.signal });

    findings(ctx, anomalies, ANOMALIES, "anomalies", "No anomalies.", [
      { key: "kind", label: "Kind", format: label },
      { key: "event", label: "Event", format: fmt.text },
      { key: "source", label: "Source", format: fmt.text },
      { key: "account_id", label: "Account", cell: (r) => accountLink(r.account_id) },
      { key: "since", label: "Since", format: fmt.date },
      { key: "expected", label: "Expected", numeric: true, format: fmt.num },
      { key: "observed", label: "Observed", numeric: true, format: fmt.num },
      { key: "evidence", label: "Evidence", format: fmt.text },
    ]);
    findings(ctx, reconcile, RECONCILE, "reconcile", "Nothing to reconcile.", [
      { key: "check", label: "Check", format: label },
      { key: "account_id", label: "Account or domain", cell: (r) => (missing(r.account_id) ? fmt.text(r.domain) : accountLink(r.account_id)) },
      { key: "detail", label: "Detail", format: fmt.text },
    ]);
  },
};

// An analysis's findings as of the page's day, as a table (or `none` when there are none).
function findings(ctx, target, path, name, none, columns) {
  const ask = (extra = {}) => ctx.fetch(path, extra).then((result) => { ctx.seen(result.as_of); return result; });
  fill(target.body, () => ask(), (result) => {
    target.body.dataset.rows = result.total_rows ?? result.rows.length;
    if (!result.rows.length) { target.body.append(empty(none), notes(result) || ""); return; }
    target.body.append(table(result.rows, columns, { caption: label(name), id: `${name}-table`, limit: 100 }), notes(result) || "");
  }, { signal: ctx.signal });
  target.actions.append(csvButton(name, () => ask({ limit: 100000 })));
}
