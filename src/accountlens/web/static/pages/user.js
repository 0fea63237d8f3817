// `/users/{id}`: one person: activity, roles over time, and every account they belong to.
import { h, fmt, panel, fill, kpi, table, accountLink, link, label, empty, missing } from "../ui.js";
import { chartBox, plot, hbar, COLORS } from "../charts.js";
import { pageHeader, toolbar, asOfControl, grid } from "./common.js";

export default {
  render(ctx) {
    const id = ctx.args[0];
    const head = h("div", { class: "page-head-slot" }, pageHeader(ctx, id));
    ctx.main.append(h("p", { class: "breadcrumb" }, link("/accounts", "Accounts"), " / user"), head, toolbar(asOfControl(ctx)));
    const cards = h("div", { id: "cards", class: "cards", "aria-live": "polite" });
    ctx.main.append(h("section", { class: "kpis", "aria-label": "Key figures" }, cards));
    const activity = panel("Activity, last 90 days", { wide: true, id: "panel-activity" });
    const accounts = panel("Accounts", { id: "panel-accounts" });
    const events = panel("What they do most", { id: "panel-events" });
    const roles = panel("Roles over time", { wide: true, id: "panel-roles" });
    ctx.main.append(grid(activity, accounts, events, roles));

    const detail = ctx.fetch(`/api/v1/users/${encodeURIComponent(id)}`);
    fill(cards, () => detail, (d) => {
      ctx.seen(d.as_of);
      const u = d.user;
      head.replaceChildren(pageHeader(ctx, u.name || u.email || u.user_id, { subtitle: [u.email, `user ${u.user_id}`, `as of ${d.as_of}`].filter(Boolean).join(" · ") }));
      const total = d.activity.reduce((n, x) => n + x.events, 0);
      const last30 = d.activity.slice(-30).reduce((n, x) => n + x.events, 0);
      const activeDays = d.activity.filter((x) => x.events > 0).length;
      const lastActive = d.accounts.map((a) => a.last_active_at).filter(Boolean).sort().pop();
      cards.append(
        kpi("Accounts", fmt.int(d.accounts.filter((a) => a.current).length), { raw: d.accounts.length, key: "accounts", sub: `${fmt.int(d.accounts.length)} in all` }),
        kpi("Events (30 d)", fmt.int(last30), { raw: last30, key: "events_30d" }),
        kpi("Active days (90 d)", fmt.int(activeDays), { raw: activeDays, key: "active_days", sub: `${fmt.int(total)} events` }),
        kpi("Last active", lastActive ? fmt.date(lastActive) : "–", { raw: lastActive || null, key: "last_active" }),
        kpi("First seen", fmt.date(u.created_at), { raw: u.created_at, key: "created_at" }),
      );

      if (total) {
        const box = chartBox(`Active events per day over the last 90 days, ${total} in all`, { height: 220 });
        activity.body.append(box);
        plot(box, [{ type: "bar", x: d.activity.map((x) => x.day), y: d.activity.map((x) => x.events), marker: { color: COLORS[0] }, hovertemplate: "%{x}: %{y} events<extra></extra>" }],
          { xaxis: { type: "date" }, yaxis: { title: { text: "events" }, rangemode: "tozero" } });
      } else {
        activity.body.append(empty("No activity in the last 90 days."));
      }

      accounts.body.append(table(d.accounts, [
        { key: "account_name", label: "Account", cell: (a) => accountLink(a.account_id, a.account_name) },
        { key: "role", label: "Role" },
        { key: "current", label: "Member now", format: fmt.bool },
        { key: "last_active_at", label: "Last active", format: fmt.date },
        { key: "events_30d", label: "Events (30 d)", numeric: true, format: fmt.int },
      ], { caption: "Accounts of this user", id: "user-accounts-table" }));

      if (d.top_events.length) {
        const box = chartBox(`The user's most frequent events: ${d.top_events.map((e) => `${e.name} ${e.events}`).join(", ")}`);
        events.body.append(box);
        hbar(box, d.top_events.map((e) => e.name), d.top_events.map((e) => e.events), { title: "events, last 90 days", color: COLORS[2] });
      } else {
        events.body.append(empty("No events in the last 90 days."));
      }

      drawRoles(roles, d);
    }, { signal: ctx.signal }).then((d) => {
      if (d) return;
      for (const p of [activity, accounts, events, roles]) p.body.replaceChildren(empty("See the error above."));
    });
  },
};

function drawRoles(target, d) {
  if (!d.memberships.length) { target.body.append(empty("No membership is known: the user's accounts come from their events.")); return; }
  const end = `${d.as_of}T23:59:59`;
  const rows = d.memberships.map((m) => ({ ...m, label: `${m.account_name || m.account_id} · ${m.role || "no role"}${m.unit_name ? ` · ${m.unit_name}` : ""}` }));
  const box = chartBox(`Memberships over time: ${rows.map((m) => `${m.label} from ${fmt.date(m.valid_from)} ${m.valid_to ? `to ${fmt.date(m.valid_to)}` : "on"}`).join("; ")}`,
    { height: Math.max(140, 40 * rows.length + 70) });
  target.body.append(box);
  const colors = new Map();
  plot(box, rows.map((m) => {
    const role = m.role || "no role";
    if (!colors.has(role)) colors.set(role, COLORS[colors.size % COLORS.length]);
    const to = m.valid_to || end;
    return { type: "scatter", mode: "lines", x: [m.valid_from, to], y: [m.label, m.label], name: role, legendgroup: role,
      showlegend: false, line: { width: 14, color: colors.get(role) }, hovertemplate: `${m.label}<br>${fmt.date(m.valid_from)} – ${m.valid_to ? fmt.date(m.valid_to) : "now"}<extra></extra>` };
  }), { xaxis: { type: "date" }, yaxis: { automargin: true }, margin: { l: 8 } });
  target.body.append(table(d.memberships, [
    { key: "account_name", label: "Account", cell: (m) => accountLink(m.account_id, m.account_name) },
    { key: "role", label: "Role" }, { key: "unit_name", label: "Unit" },
    { key: "valid_from", label: "From", format: fmt.date }, { key: "valid_to", label: "To", format: (v) => (missing(v) ? "now" : fmt.date(v)) },
    { key: "source", label: "Source", format: (v) => label(v) }], { caption: "Memberships" }));
}

