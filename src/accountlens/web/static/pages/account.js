// `/accounts/{id}`: one account for a customer-success manager: hierarchy, people, contract,
// health and its factors, predictions with their drivers, champion, handoffs, sequences,
// signals and a timeline; "Print review" opens the printable account review.
import { h, fmt, panel, fill, notes, kpi, table, csvButton, accountLink, userLink, link, label, missing, empty } from "../ui.js";
import { chartBox, plot, hbar, graph, GRADE_COLORS, COLORS } from "../charts.js";
import { pageHeader, toolbar, asOfControl, grid } from "./common.js";

const OUTCOMES = ["churn", "renewal", "expansion"];

export default {
  render(ctx) {
    const id = ctx.args[0];
    const enc = encodeURIComponent(id);
    const head = h("div", { class: "page-head-slot" }, pageHeader(ctx, id));
    const review = h("a", { class: "button", href: `/reports/accounts/${enc}${reviewQuery(ctx)}`, target: "_blank", rel: "noopener" }, "Print review");
    ctx.main.append(
      h("p", { class: "breadcrumb" }, link("/accounts", "Accounts"), " / "),
      head,
      toolbar(asOfControl(ctx), h("div", { class: "field toolbar-end" }, review)),
    );
    const cards = h("div", { id: "cards", class: "cards", "aria-live": "polite" });
    ctx.main.append(h("section", { class: "kpis", "aria-label": "Key figures" }, cards));

    const hierarchy = panel("Hierarchy and org units", { id: "panel-hierarchy" });
    const contract = panel("Seats and contract", { id: "panel-contract" });
    const users = panel("Users", { wide: true, id: "panel-users" });
    const health = panel("Health and its factors", { id: "panel-health" });
    const outlook = panel("Churn, renewal and expansion", { id: "panel-outlook" });
    const champion = panel("Champion", { id: "panel-champion" });
    const signals = panel("Signals", { id: "panel-signals" });
    const handoffs = panel("Handoffs in this account", { wide: true, id: "panel-handoffs" });
    const sequences = panel("Sequences seen here", { id: "panel-sequences", description: "Patterns of roles and events that preceded renewals, in this account's cases." });
    const timeline = panel("Timeline", { id: "panel-timeline" });
    ctx.main.append(grid(hierarchy, contract, users, health, outlook, champion, signals, handoffs, sequences, timeline));

    const detail = ctx.fetch(`/api/v1/accounts/${enc}`);
    const scoped = { account: id };

    fill(cards, () => detail, (d) => {
      ctx.seen(d.as_of);
      const a = d.account;
      const title = a.name || a.account_id;
      head.replaceChildren(pageHeader(ctx, title, { subtitle: [a.domain, a.industry, a.region, a.plan && `${a.plan} plan`, a.owner && `owner ${a.owner}`, `as of ${d.as_of}`].filter(Boolean).join(" · ") }));
      const c = d.contract;
      const soonest = c.subscriptions.filter((x) => x.end).sort((x, y) => String(x.end).localeCompare(String(y.end)))[0];
      cards.append(
        kpi("ARR", fmt.money(c.arr), { raw: c.arr, key: "arr" }),
        kpi("Seats", fmt.int(c.seats), { raw: c.seats, key: "seats" }),
        kpi("Monthly active users", fmt.int(c.mau), { raw: c.mau, key: "mau" }),
        kpi("Seat utilization", fmt.pct(c.seat_utilization), { raw: c.seat_utilization, key: "seat_utilization", tone: c.seat_utilization >= 0.95 ? "good" : c.seat_utilization !== null && c.seat_utilization < 0.3 ? "warn" : null }),
        kpi("Renewal", soonest ? fmt.date(soonest.end) : "–", { raw: soonest ? soonest.end : null, key: "renewal", sub: soonest ? `in ${fmt.int(soonest.days_to_end)} days` : "no end date" }),
        kpi("Employees", fmt.int(a.employees), { raw: a.employees, key: "employees", sub: a.size_band }),
      );
      drawHierarchy(hierarchy, d);
      drawContract(contract, d);
      drawUsers(users, d, id);
      drawTimeline(timeline, d);
    }, { signal: ctx.signal }).then((d) => {
      if (d) return;
      for (const p of [hierarchy, contract, users, timeline]) p.body.replaceChildren(empty("See the error above."));
    });

    fill(health.body, () => Promise.all([ctx.query("account-health", scoped), ctx.query("account-health-summary", scoped).catch((e) => e)]),
      ([factors, summary]) => drawHealth(health, factors, summary), { signal: ctx.signal });

    fill(outlook.body, () => Promise.all(OUTCOMES.map((o) => ctx.query(`account-${o}`, scoped).catch((e) => e))),
      (results) => drawOutlook(outlook, results), { signal: ctx.signal });

    fill(champion.body, () => ctx.query("account-champion", scoped), (r) => drawChampion(champion, r), { signal: ctx.signal });

    fill(signals.body, () => ctx.query("account-signals", scoped), (r) => {
      if (!r.rows.length) { signals.body.append(empty("No signal fires for this account."), notes(r) || ""); return; }
      signals.body.append(h("ul", { class: "signal-list" }, r.rows.map((s) => h("li", { class: `signal-${s.kind}` },
        h("span", { class: "chip" }, label(s.kind)), " ", h("strong", {}, label(s.signal)), ": ", s.detail))), notes(r) || "");
    }, { signal: ctx.signal });

    fill(handoffs.body, () => Promise.all([ctx.query("account-handoffs", scoped), ctx.query("account-bottlenecks", scoped)]), ([pairs, bottlenecks]) => {
      if (!pairs.rows.length) { handoffs.body.append(empty("No handoffs between people in this account in the lookback window."), notes(pairs) || ""); return; }
      const edges = pairs.rows.map((r) => ({ from: r.from_actor, to: r.to_actor, weight: r.handoffs, text: `${fmt.int(r.handoffs)} handoffs, median ${fmt.hours(r.median_latency_hours)}` }));
      handoffs.body.append(h("div", { class: "split" },
        graph(edges, { description: `Handoffs between roles in this account: ${edges.length} pairs` }),
        h("div", {}, h("h3", {}, "Bottlenecks"), bottlenecks.rows.length
          ? table(bottlenecks.rows, [
            { key: "from_actor", label: "From" }, { key: "to_actor", label: "To" },
            { key: "handoffs", label: "Handoffs", numeric: true, format: fmt.int },
            { key: "median_latency_hours", label: "Median wait", numeric: true, format: fmt.hours },
            { key: "latency_ratio", label: "× typical", numeric: true, format: fmt.num },
            { key: "stall_rate", label: "Stalled", numeric: true, format: fmt.pct }], { caption: "Bottlenecks of this account" })
          : empty("No pair is slower than the others."))), notes(pairs) || "");
      handoffs.actions.append(csvButton(`handoffs-${id}`, () => Promise.resolve(pairs)));
    }, { signal: ctx.signal });

    fill(sequences.body, () => ctx.query("account-sequences", scoped), (r) => {
      if (!r.rows.length) { sequences.body.append(empty("No sequence stands out in this account's renewals."), notes(r) || ""); return; }
      sequences.body.append(table(r.rows, [
        { key: "pattern", label: "Pattern" },
        { key: "outcome_cases", label: "Renewals with it", numeric: true, format: fmt.int },
        { key: "confidence", label: "Confidence", numeric: true, format: fmt.pct },
        { key: "lift", label: "Lift", numeric: true, format: fmt.num }], { caption: "Sequences seen in this account" }), notes(r) || "");
    }, { signal: ctx.signal });
  },
};

function reviewQuery(ctx) {
  const q = new URLSearchParams();
  if (ctx.get("as_of")) q.set("as_of", ctx.get("as_of"));
  if (ctx.access.length > 1 && ctx.workspace) q.set("workspace", ctx.workspace);
  const s = q.toString();
  return s ? `?${s}` : "";
}

function drawHierarchy(target, d) {
  const parts = [];
  parts.push(h("p", {}, "Parent: ", d.parent ? accountLink(d.parent.account_id, d.parent.name) : "none"));
  if (d.children.length) {
    parts.push(h("h3", {}, `Subsidiaries (${d.children.length})`), h("ul", { class: "children" }, d.children.map((c) => h("li", {},
      accountLink(c.account_id, c.name), ` · ARR ${fmt.money(c.arr)} · `, h("span", { class: `chip grade-${c.health_grade}` }, missing(c.health_score) ? label(c.health_grade) : `${fmt.int(c.health_score)} ${c.health_grade}`)))));
  }
  if (d.units.length) {
    const byParent = new Map();
    for (const u of d.units) {
      const key = u.parent_unit_id || "";
      if (!byParent.has(key)) byParent.set(key, []);
      byParent.get(key).push(u);
    }
    const ids = new Set(d.units.map((u) => u.unit_id));
    const roots = d.units.filter((u) => !u.parent_unit_id || !ids.has(u.parent_unit_id));
    const tree = (units, depth) => h("ul", { class: depth ? "tree" : "tree root" }, units.map((u) => h("li", {},
      h("span", { class: "unit-kind" }, label(u.kind)), " ", h("strong", {}, u.name || u.unit_id),
      h("span", { class: "muted" }, ` · ${fmt.int(u.members)} members, ${fmt.int(u.active_users_30d)} active`),
      depth < 6 && byParent.has(u.unit_id) ? tree(byParent.get(u.unit_id), depth + 1) : "")));
    parts.push(h("h3", {}, `Org units (${d.units.length})`), tree(roots, 0));
  } else {
    parts.push(empty("No org units are known."));
  }
  target.body.append(...parts);
}

function drawContract(target, d) {
  const c = d.contract;
  if (c.seats) {
    const box = chartBox(`Monthly active users ${c.mau} against ${c.seats} seats`, { height: 110 });
    target.body.append(box);
    plot(box, [
      { type: "bar", orientation: "h", y: ["Seats"], x: [c.seats], name: "Seats", marker: { color: "#d0d7e5" }, hovertemplate: "Seats: %{x}<extra></extra>" },
      { type: "bar", orientation: "h", y: ["Seats"], x: [c.mau], name: "Monthly active users", marker: { color: COLORS[0] }, width: 0.45, hovertemplate: "MAU: %{x}<extra></extra>" },
    ], { barmode: "overlay", showlegend: true, legend: { orientation: "h", y: -0.6 }, margin: { t: 4, b: 8 }, yaxis: { showticklabels: false } });
  }
  const measured = c.entitlements.filter((e) => !missing(e.alignment));
  if (measured.length) {
    target.body.append(h("h3", {}, "Entitlements used"));
    const box = chartBox(`Usage of each entitlement as a share of the contract: ${measured.map((e) => `${e.entitlement} ${fmt.pct(e.alignment)}`).join(", ")}`);
    target.body.append(box);
    hbar(box, measured.map((e) => label(e.entitlement)), measured.map((e) => e.alignment * 100), {
      title: "% of the entitlement used", text: measured.map((e) => `${fmt.pct(e.alignment)} (${fmt.num(e.usage)} of ${fmt.num(e.limit)})`),
      color: COLORS[5],
    }).then(() => window.Plotly && window.Plotly.relayout(box, { shapes: [{ type: "line", x0: 100, x1: 100, yref: "paper", y0: 0, y1: 1, line: { color: "#c92a2a", dash: "dot" } }] }));
  }
  if (c.subscriptions.length) {
    target.body.append(h("h3", {}, "Subscriptions in force"), table(c.subscriptions, [
      { key: "product", label: "Product" }, { key: "plan", label: "Plan" },
      { key: "seats", label: "Seats", numeric: true, format: fmt.int }, { key: "arr", label: "ARR", numeric: true, format: fmt.money },
      { key: "start", label: "Start", format: fmt.date }, { key: "end", label: "End", format: fmt.date }], { caption: "Subscriptions" }));
  } else {
    target.body.append(empty("No subscription is in force on this day."));
  }
}

function drawUsers(target, d, id) {
  const current = d.users.filter((u) => u.current);
  const former = d.users.filter((u) => !u.current);
  const columns = [
    { key: "name", label: "User", cell: (u) => h("div", {}, userLink(u.user_id, u.name || u.email || u.user_id), u.email && u.name ? h("div", { class: "muted small" }, u.email) : "") },
    { key: "role", label: "Role" },
    { key: "unit_name", label: "Unit" },
    { key: "member_since", label: "Member since", format: fmt.date },
    { key: "last_active_at", label: "Last active", format: fmt.date },
    { key: "events_30d", label: "Events (30 d)", numeric: true, format: fmt.int },
  ];
  target.body.append(
    h("p", {}, `${fmt.int(current.length)} current member${current.length === 1 ? "" : "s"}${former.length ? `, ${fmt.int(former.length)} former` : ""}${d.users_truncated ? ` (the ${d.users.length} most active of ${fmt.int(d.users_total)} are listed)` : ""}.`),
    table(current, columns, { caption: "Current users", id: "users-table", limit: 25 }),
    former.length ? h("details", {}, h("summary", {}, `Former members (${former.length})`), table(former, columns, { caption: "Former users", limit: 25 })) : "",
  );
  const result = { as_of: d.as_of, columns: Object.keys(d.users[0] || { user_id: "" }).map((name) => ({ name })), rows: d.users };
  target.actions.append(csvButton(`users-${id}`, () => Promise.resolve(result)));
}

function drawTimeline(target, d) {
  if (!d.timeline.length) { target.body.append(empty("Nothing happened in this account yet.")); return; }
  target.body.append(h("ol", { class: "timeline" }, d.timeline.map((t) => h("li", { class: `kind-${t.kind}` },
    h("time", { datetime: t.at }, fmt.date(t.at)), " ", h("span", { class: "chip" }, label(t.kind)), " ", withUserLink(t.text, t.user_id)))));
}

// The entry's text with the user's id in it made a link to their page.
function withUserLink(text, userId) {
  if (!userId) return text;
  const at = text.indexOf(userId);
  if (at < 0) return [text, " · ", userLink(userId)];
  return [text.slice(0, at), userLink(userId), text.slice(at + userId.length)];
}

async function drawHealth(target, factors, summary) {
  const rows = factors.rows;
  if (!rows.length) { target.body.append(empty("No health score: no factor has an input for this account."), notes(factors) || ""); return; }
  const row = summary instanceof Error ? null : summary.rows[0];
  const score = row ? row.score : rows[0].score_total;
  const grade = row ? row.grade : "unknown";
  target.body.append(h("p", { class: "big-number", dataset: { score } }, h("span", { class: `chip grade-${grade}` }, `${fmt.int(score)} · ${grade}`), " out of 100"));
  if (row && !missing(row.trend)) {
    const word = row.trend > 0.5 ? "up" : row.trend < -0.5 ? "down" : "about the same";
    target.body.append(h("p", {}, `Trend: ${word} (${row.trend > 0 ? "+" : ""}${fmt.num(row.trend)} points; it was ${fmt.int(row.previous_score)}).`));
  }
  if (row && row.lever) {
    target.body.append(h("p", {}, "Biggest lever: ", h("strong", {}, label(row.lever)), ` (up to +${fmt.num(row.lever_gain)} points if it scored 100).`));
  }
  const shown = rows.filter((r) => !r.missing);
  const box = chartBox(`Health factor contributions: ${shown.map((r) => `${r.factor} ${fmt.num(r.contribution)} points`).join(", ")}`);
  target.body.append(box);
  await hbar(box, shown.map((r) => label(r.factor)), shown.map((r) => r.contribution), {
    title: "points of the score", text: shown.map((r) => `${fmt.num(r.contribution)} (score ${fmt.int(r.score)} × ${fmt.pct(r.weight)})`), color: GRADE_COLORS[grade] || COLORS[0],
  });
  const missingFactors = rows.filter((r) => r.missing).map((r) => label(r.factor));
  if (missingFactors.length) target.body.append(h("p", { class: "muted" }, `No input for ${missingFactors.join(", ")}: their weight went to the other factors.`));
  target.body.append(notes(factors) || "");
}

function drawOutlook(target, results) {
  const list = h("div", { class: "outlook" });
  target.body.append(list);
  results.forEach((result, i) => {
    const outcome = OUTCOMES[i];
    const box = h("div", { class: "outcome", dataset: { outcome } }, h("h3", {}, label(outcome)));
    list.append(box);
    if (result instanceof Error) { box.append(h("p", { class: "error", role: "alert" }, result.message)); return; }
    const row = result.rows[0];
    if (!row || missing(row.probability)) {
      box.append(empty("No prediction for this account."), notes(result) || "");
      return;
    }
    box.append(h("p", { class: "big-number", dataset: { probability: row.probability } }, fmt.pct(row.probability),
      h("span", { class: "muted small" }, ` within the horizon · model: ${row.source}`)));
    const drivers = (row.drivers || []).filter((d) => d && !missing(d.contribution));
    if (drivers.length) {
      const chart = chartBox(`Drivers of the ${outcome} prediction: ${drivers.map((d) => `${d.feature} ${fmt.num(d.contribution)}`).join(", ")}`, { height: 60 + 26 * drivers.length });
      box.append(chart);
      plot(chart, [{ type: "bar", orientation: "h", y: drivers.map((d) => label(d.feature)), x: drivers.map((d) => d.contribution),
        marker: { color: drivers.map((d) => (d.contribution >= 0 ? "#c92a2a" : "#2b8a3e")) },
        text: drivers.map((d) => `value ${fmt.num(d.value)}`), textposition: "auto", hovertemplate: "%{y}: %{x:.2f}<extra></extra>" }],
      { yaxis: { autorange: "reversed" }, xaxis: { title: { text: `raises (+) or lowers (−) the ${outcome} log-odds` } }, margin: { l: 8, t: 4 } });
    }
    box.append(notes(result) || "");
  });
}

function drawChampion(target, result) {
  const row = result.rows[0];
  if (!row) { target.body.append(empty("No champion: nobody is active here."), notes(result) || ""); return; }
  if (!row.champion) { target.body.append(empty("No human activity to choose a champion from."), h("p", {}, `Risk: ${row.risk}`)); return; }
  target.body.append(h("dl", { class: "facts" },
    h("dt", {}, "Champion"), h("dd", {}, userLink(row.champion, row.champion_name)),
    h("dt", {}, "Role"), h("dd", {}, row.role || "–"),
    h("dt", {}, "Share of activity"), h("dd", {}, fmt.pct(row.share_of_activity)),
    h("dt", {}, "Status"), h("dd", {}, h("span", { class: `chip status-${row.status}` }, label(row.status)), row.left_on ? ` on ${fmt.date(row.left_on)}` : ""),
    h("dt", {}, "Last seen"), h("dd", {}, `${fmt.date(row.last_seen)} (${fmt.int(row.days_since_seen)} days ago)`),
    h("dt", {}, "Admins"), h("dd", {}, `${fmt.int(row.admins)} now${row.admins_left ? `, ${fmt.int(row.admins_left)} left recently` : ""}`),
    h("dt", {}, "Risk"), h("dd", {}, h("span", { class: `chip risk-${row.risk}` }, label(row.risk)))), notes(result) || "");
}

