// The accountlens web app: one page of HTML, pages drawn here from the URL (history API), all
// state in the query string so that a link can be shared. Plain JS modules over the REST API;
// everything is served by the server itself (no CDN): it works offline.
import * as api from "./api.js";
import { h, href, setLinker } from "./ui.js";
import overview from "./pages/overview.js";
import accounts from "./pages/accounts.js";
import account from "./pages/account.js";
import user from "./pages/user.js";
import { analysesIndex, analysisPage } from "./pages/analyses.js";
import signin from "./pages/signin.js";
import quality from "./pages/quality.js";
import attribution from "./pages/attribution.js";
import experiments from "./pages/experiments.js";

const ROUTES = [
  [/^\/$/, overview],
  [/^\/accounts\/?$/, accounts],
  [/^\/accounts\/(.+)$/, account],
  [/^\/users\/(.+)$/, user],
  [/^\/analyses\/?$/, analysesIndex],
  [/^\/analyses\/([\w-]+)$/, analysisPage],
  [/^\/quality\/?$/, quality],
  [/^\/attribution\/?$/, attribution],
  [/^\/experiments\/?$/, experiments],
  [/^\/signin$/, signin],
];
const NAV = [["/", "Overview"], ["/accounts", "Accounts"], ["/analyses", "Analyses"],
  ["/attribution", "Attribution"], ["/experiments", "Experiments"], ["/quality", "Data quality"]];
// State that travels with every link between pages; the rest belongs to one page.
const TRAVELS = ["workspace", "as_of"];

const main = document.getElementById("main");
const app = { access: [], controller: null, lastPath: null, defaultAsOf: new Map() };

function notFound() {
  return {
    title: "Page not found",
    render(ctx) {
      main.append(h("h1", { tabindex: "-1" }, "Page not found"),
        h("p", {}, "There is no page at ", h("code", {}, location.pathname), ". ", h("a", { href: href("/") }, "Go to the overview"), "."));
      ctx.setTitle("Page not found");
    },
  };
}

function route() {
  for (const [pattern, page] of ROUTES) {
    const match = location.pathname.match(pattern);
    if (match) return { page, args: match.slice(1).map((a) => decodeURIComponent(a)) };
  }
  return { page: notFound(), args: [] };
}

function linkTo(path, params = {}) {
  const current = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const key of TRAVELS) {
    if (key === "workspace" && !(app.access.length > 1)) continue;
    const value = key === "workspace" ? api.workspace() : current.get(key);
    if (value) query.set(key, value);
  }
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") query.delete(key);
    else query.set(key, String(value));
  }
  const qs = query.toString();
  return qs ? `${path}?${qs}` : path;
}

export function navigate(url, { replace = false } = {}) {
  const state = { scroll: 0 };
  if (replace) history.replaceState(state, "", url);
  else {
    history.replaceState({ ...(history.state || {}), scroll: window.scrollY }, "");
    history.pushState(state, "", url);
  }
  render({ restoreScroll: false });
}

function accessOf(name) {
  return app.access.find((w) => w.name === name);
}

function context(args, signal) {
  const params = new URLSearchParams(location.search);
  const ctx = {
    args,
    signal,
    params,
    main,
    get: (key, fallback = null) => params.get(key) ?? fallback,
    getAll: (key) => params.getAll(key),
    workspace: api.workspace(),
    access: app.access,
    // Change the page's state: `patch` values replace those in the query string (null
    // removes one); a change of anything but the page number starts again at page 1.
    set(patch, { replace = false } = {}) {
      const next = new URLSearchParams(location.search);
      for (const [key, value] of Object.entries(patch)) {
        if (value === null || value === undefined || value === "" || value === false) next.delete(key);
        else next.set(key, String(value));
      }
      if (!("page" in patch)) next.delete("page");
      const qs = next.toString();
      navigate(qs ? `${location.pathname}?${qs}` : location.pathname, { replace });
    },
    // Results of a panel (api/dashboard.py) as of the page's day.
    query(id, extra = {}) {
      const asOf = params.get("as_of");
      return api.query(id, { ...(asOf ? { as_of: asOf } : {}), ...extra }, { signal }).then((result) => {
        ctx.seen(result.as_of);
        return result;
      });
    },
    // A document of the API (an account, a user) as of the page's day.
    fetch(path, extra = {}) {
      const asOf = params.get("as_of");
      return api.getJSON(path, { ...(asOf ? { as_of: asOf } : {}), ...extra }, { signal });
    },
    // The day results are as of when none is asked: shown in the as-of picker.
    seen(asOf) {
      if (!asOf || params.get("as_of")) return;
      app.defaultAsOf.set(api.workspace(), String(asOf).slice(0, 10));
      const input = document.getElementById("as-of");
      if (input && !input.value) input.value = String(asOf).slice(0, 10);
    },
    defaultAsOf: () => app.defaultAsOf.get(api.workspace()) || null,
    setTitle(text) {
      document.title = `${text} · accountlens`;
    },
    navigate,
    refreshAccess,
    link: linkTo,
  };
  return ctx;
}

function drawHeader() {
  const current = location.pathname;
  const nav = document.getElementById("nav-list");
  nav.replaceChildren(...NAV.map(([path, text]) => {
    const active = path === "/" ? current === "/" : current.startsWith(path);
    return h("li", {}, h("a", { href: linkTo(path), "aria-current": active ? "page" : null }, text));
  }));
  const picker = document.getElementById("workspace-picker");
  const pickerBox = document.getElementById("workspace-box");
  if (app.access.length > 1) {
    pickerBox.hidden = false;
    picker.replaceChildren(...app.access.map((w) => h("option", { value: w.name, selected: w.name === api.workspace() }, w.name)));
  } else {
    pickerBox.hidden = true;
  }
  const access = accessOf(api.workspace());
  document.getElementById("sign-out").hidden = !(access && access.auth_required && access.signed_in);
  // The role the pages read as; a csm sees its book of accounts only (docs/governance.md).
  const badge = document.getElementById("role-badge");
  const role = access && access.auth_required && access.signed_in ? access.role : null;
  badge.hidden = !role;
  badge.textContent = role === "csm" ? "csm · your book of accounts" : role || "";
  badge.title = role === "csm" ? "Every page shows the accounts of your book only" : "";
  document.body.dataset.exports = role === "viewer" || role === "csm" ? "false" : "true";
  document.getElementById("api-docs").href = "/docs";
}

async function loadAccess() {
  const state = await api.getJSON("/api/v1/session", {}, { withWorkspace: false, fresh: true });
  app.access = state.workspaces;
}

function chooseWorkspace() {
  const params = new URLSearchParams(location.search);
  const asked = params.get("workspace");
  const names = app.access.map((w) => w.name);
  const name = names.includes(asked) ? asked : names[0];
  api.setWorkspace(name, names.length > 1);
  if (names.length > 1 && asked !== name) {
    params.set("workspace", name);
    history.replaceState(history.state, "", `${location.pathname}?${params}`);
  }
}

async function render({ restoreScroll = false } = {}) {
  if (app.controller) app.controller.abort();
  const controller = new AbortController();
  app.controller = controller;
  chooseWorkspace();
  const { page, args } = route();
  const access = accessOf(api.workspace());
  if (page !== signin && access && access.auth_required && !access.signed_in) {
    const next = location.pathname + location.search;
    history.replaceState(null, "", linkTo("/signin", { next }));
    return render();
  }
  const focused = document.activeElement && document.activeElement.id && main.contains(document.activeElement)
    ? { id: document.activeElement.id, start: document.activeElement.selectionStart, end: document.activeElement.selectionEnd }
    : null;
  const samePage = app.lastPath === location.pathname;
  app.lastPath = location.pathname;
  drawHeader();
  closeMenu();
  main.replaceChildren();
  const ctx = context(args, controller.signal);
  try {
    page.render(ctx);
  } catch (error) {
    main.append(h("div", { class: "error", role: "alert" }, `This page failed: ${error.message}`));
    console.warn(error);
  }
  if (focused && samePage) {
    const again = document.getElementById(focused.id);
    if (again) {
      again.focus();
      try { if (focused.start !== null && focused.start !== undefined) again.setSelectionRange(focused.start, focused.end); } catch { /* not a text input */ }
    }
  } else if (!samePage) {
    const heading = main.querySelector("h1");
    if (heading && app.started) heading.focus({ preventScroll: true });
  }
  if (restoreScroll && history.state && history.state.scroll) {
    requestAnimationFrame(() => window.scrollTo(0, history.state.scroll));
  } else if (!samePage) {
    window.scrollTo(0, 0);
  }
  app.started = true;
}

// Links inside the app are followed without reloading the page.
function onClick(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event.target.closest("a");
  if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin) return;
  if (/^\/(api|static|docs|redoc|reports|openapi)/.test(url.pathname)) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
}

function closeMenu() {
  const button = document.getElementById("menu-button");
  button.setAttribute("aria-expanded", "false");
  document.getElementById("nav").classList.remove("open");
}

async function start() {
  history.scrollRestoration = "manual";
  setLinker(linkTo);
  document.addEventListener("click", onClick);
  window.addEventListener("popstate", () => render({ restoreScroll: true }));
  document.getElementById("menu-button").addEventListener("click", (event) => {
    const open = event.currentTarget.getAttribute("aria-expanded") !== "true";
    event.currentTarget.setAttribute("aria-expanded", String(open));
    document.getElementById("nav").classList.toggle("open", open);
  });
  document.getElementById("workspace-picker").addEventListener("change", (event) => {
    // ids differ between workspaces: a list page stays, a page of one account or user does not
    const keep = /^\/(accounts|quality|attribution|experiments|analyses(\/[\w-]+)?)?\/?$/.test(location.pathname) ? location.pathname : "/";
    api.setWorkspace(event.target.value, true);
    navigate(`${keep}?workspace=${encodeURIComponent(event.target.value)}`);
  });
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api.send("DELETE", "/api/v1/session", undefined, { workspace: api.workspace() });
    api.forget();
    await loadAccess();
    navigate(linkTo("/signin"));
  });
  api.onUnauthorized(async () => {
    if (location.pathname === "/signin") return;
    await loadAccess();
    const access = accessOf(api.workspace());
    if (access && access.auth_required && !access.signed_in) render();
  });
  try {
    await loadAccess();
  } catch (error) {
    main.replaceChildren(h("div", { class: "error", role: "alert" }, `The server could not be reached: ${error.message}`));
    return;
  }
  render();
}

export async function refreshAccess() {
  api.forget();
  await loadAccess();
}

start();
