// Charts: Plotly (served by the server itself from the installed package, loaded when a page
// first draws a chart), and two small SVG drawings of our own: sparklines and graphs of who
// hands work to whom.
import { h, s, fmt, label as labelOf } from "./ui.js";

let loadingPlotly = null;
export function plotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loadingPlotly) {
    loadingPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/static/vendor/plotly.min.js";
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => { loadingPlotly = null; reject(new Error("the chart library could not be loaded")); };
      document.head.append(script);
    });
  }
  return loadingPlotly;
}

export const COLORS = ["#2f5fd0", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#0b7285", "#5c940d", "#e67700", "#495057", "#1864ab"];
export const GRADE_COLORS = { healthy: "#2b8a3e", concerning: "#c77700", poor: "#c92a2a", unknown: "#868e96" };

const BASE = {
  font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1d2330" },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  margin: { l: 48, r: 16, t: 12, b: 40 },
  colorway: COLORS,
  hoverlabel: { font: { size: 12 } },
  legend: { orientation: "h", y: -0.2 },
};

// A chart element: the container says what it shows to screen readers (role=img).
export function chartBox(description, { height = 280 } = {}) {
  return h("div", { class: "chart", role: "img", "aria-label": description, style: `height:${height}px` });
}

export async function plot(box, traces, layout = {}) {
  const Plotly = await plotly();
  if (!box.isConnected) return;
  const merged = {
    ...BASE,
    ...layout,
    margin: { ...BASE.margin, ...(layout.margin || {}) },
    xaxis: { automargin: true, ...(layout.xaxis || {}) },
    yaxis: { automargin: true, ...(layout.yaxis || {}) },
  };
  await Plotly.newPlot(box, traces, merged, { displayModeBar: false, responsive: true });
}

// Horizontal bars, largest first, one per row.
export async function hbar(box, labels, values, { title = "", color = COLORS[0], text = null, format = null } = {}) {
  const height = Math.max(160, 28 * labels.length + 60);
  box.style.height = `${height}px`;
  await plot(box, [{
    type: "bar", orientation: "h", x: values, y: labels, marker: { color },
    text: text || (format ? values.map(format) : null), textposition: "auto", hovertemplate: "%{y}: %{x}<extra></extra>",
  }], { xaxis: { title: { text: title } }, yaxis: { autorange: "reversed" }, margin: { l: 8 } });
}

// --- sparkline ---------------------------------------------------------------------------------
export function sparkline(values, description) {
  const width = 96;
  const height = 24;
  const data = (values || []).map((v) => Number(v) || 0);
  const max = Math.max(1, ...data);
  const step = data.length > 1 ? width / (data.length - 1) : width;
  const points = data.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(" ");
  const area = data.length ? `0,${height} ${points} ${width},${height}` : "";
  return s("svg", { class: "sparkline", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": description },
    s("title", {}, description),
    s("polygon", { points: area, fill: "#dbe4ff" }),
    s("polyline", { points, fill: "none", stroke: "#2f5fd0", "stroke-width": 1.5 }));
}

// --- a directed graph (handoffs: who hands work to whom) -------------------------------------
// edges: [{from, to, weight, text}]; nodes are laid out on a circle, arrows curved so that
// A → B and B → A are both visible; the thicker the arrow, the more handoffs.
export function graph(edges, { description, maxNodes = 24 } = {}) {
  const degree = new Map();
  for (const e of edges) {
    degree.set(e.from, (degree.get(e.from) || 0) + e.weight);
    degree.set(e.to, (degree.get(e.to) || 0) + e.weight);
  }
  const nodes = [...degree.entries()].sort((a, b) => b[1] - a[1]).slice(0, maxNodes).map(([n]) => n);
  const kept = new Set(nodes);
  const shownEdges = edges.filter((e) => kept.has(e.from) && kept.has(e.to));
  const size = 520;
  const centre = size / 2;
  const radius = nodes.length > 1 ? size / 2 - 90 : 0;
  const at = new Map(nodes.map((n, i) => {
    const angle = (2 * Math.PI * i) / nodes.length - Math.PI / 2;
    return [n, { x: centre + radius * Math.cos(angle), y: centre + radius * Math.sin(angle), angle }];
  }));
  const maxWeight = Math.max(1, ...shownEdges.map((e) => e.weight));
  const maxDegree = Math.max(1, ...nodes.map((n) => degree.get(n)));
  const markerId = `arrow-${Math.random().toString(36).slice(2, 8)}`;
  const svg = s("svg", { class: "graph", viewBox: `0 0 ${size} ${size}`, role: "img", "aria-label": description },
    s("title", {}, description),
    s("defs", {}, s("marker", { id: markerId, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#5c6b8a" }))));
  for (const e of shownEdges) {
    const a = at.get(e.from);
    const b = at.get(e.to);
    if (e.from === e.to) continue;
    const r = 8 + 14 * Math.sqrt(degree.get(e.to) / maxDegree);
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const length = Math.hypot(dx, dy) || 1;
    // bend to the right of the direction of travel, end at the target's rim
    const mx = (a.x + b.x) / 2 - (dy / length) * 28;
    const my = (a.y + b.y) / 2 + (dx / length) * 28;
    const ex = b.x - ((b.x - mx) / Math.hypot(b.x - mx, b.y - my)) * (r + 2);
    const ey = b.y - ((b.y - my) / Math.hypot(b.x - mx, b.y - my)) * (r + 2);
    const width = 1 + 6 * (e.weight / maxWeight);
    svg.append(s("path", { d: `M ${a.x.toFixed(1)} ${a.y.toFixed(1)} Q ${mx.toFixed(1)} ${my.toFixed(1)} ${ex.toFixed(1)} ${ey.toFixed(1)}`,
      fill: "none", stroke: "#8796b8", "stroke-opacity": 0.8, "stroke-width": width.toFixed(1), "marker-end": `url(#${markerId})` },
    s("title", {}, `${e.from} → ${e.to}: ${e.text}`)));
  }
  for (const n of nodes) {
    const p = at.get(n);
    const r = 8 + 14 * Math.sqrt(degree.get(n) / maxDegree);
    const outward = nodes.length > 1 ? Math.cos(p.angle) : 0;
    const anchor = outward > 0.3 ? "start" : outward < -0.3 ? "end" : "middle";
    const lx = p.x + (nodes.length > 1 ? Math.cos(p.angle) * (r + 6) : 0);
    const ly = p.y + (nodes.length > 1 ? Math.sin(p.angle) * (r + 6) : r + 14) + 4;
    svg.append(s("g", { class: "node" },
      s("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: r.toFixed(1), fill: "#2f5fd0", "fill-opacity": 0.85 },
        s("title", {}, `${n}: ${fmt.int(degree.get(n))} handoffs in or out`)),
      s("text", { x: lx.toFixed(1), y: ly.toFixed(1), "text-anchor": anchor, class: "node-label" }, shorten(n))));
  }
  return h("div", { class: "graph-box" }, svg,
    nodes.length < degree.size ? h("p", { class: "muted" }, `The ${maxNodes} busiest of ${degree.size} are drawn.`) : null);
}

function shorten(text) {
  const t = String(text);
  return t.length > 22 ? `${t.slice(0, 21)}…` : t;
}

export function legendOf(entries) {
  return h("ul", { class: "legend" }, entries.map(([name, color]) => h("li", {},
    h("span", { class: "swatch", style: `background:${color}`, "aria-hidden": "true" }), labelOf(name))));
}
