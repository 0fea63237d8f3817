// Talking to the REST API: the workspace goes into every call, errors become ApiError with the
// API's own message, and what a page asks is taken from GET /api/v1/dashboard by panel id.

export class ApiError extends Error {
  constructor(status, message, problems = []) {
    super(message);
    this.status = status;
    this.problems = problems;
  }
}

const session = { workspace: null, several: false, onUnauthorized: null };
const kept = new Map(); // url -> {at, promise}: back/forward and repeated panels answer at once
const KEEP_MS = 30_000;
let declared = null; // GET /api/v1/dashboard

export function setWorkspace(name, several) {
  session.workspace = name;
  session.several = several;
  kept.clear();
}

export function workspace() {
  return session.workspace;
}

export function onUnauthorized(handler) {
  session.onUnauthorized = handler;
}

export function forget() {
  kept.clear();
}

// Query parameters: arrays repeat their key; null, undefined and "" are left out.
export function queryString(params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => query.append(key, String(v)));
    else query.append(key, String(value));
  }
  return query.toString();
}

async function errorOf(response) {
  let message = `HTTP ${response.status} ${response.statusText}`.trim();
  let problems = [];
  try {
    const body = await response.json();
    if (body && body.error) message = body.error;
    else if (body && body.detail) message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    problems = (body && body.problems) || [];
  } catch {
    // not JSON (a proxy's page, a crash): the status says it
  }
  return new ApiError(response.status, message, problems);
}

// GET a JSON document of the API; `withWorkspace` adds ?workspace= (every workspace route).
// Requests are shared (a page and the next may ask the same), so a page that is left does not
// cancel them: its panels ignore what arrives (ui.js `fill`); `signal` is accepted for that.
export async function getJSON(path, params = {}, { signal, withWorkspace = true, fresh = false } = {}) {
  const all = withWorkspace && session.workspace ? { ...params, workspace: session.workspace } : params;
  const qs = queryString(all);
  const url = qs ? `${path}?${qs}` : path;
  const now = Date.now();
  const hit = kept.get(url);
  if (!fresh && hit && now - hit.at < KEEP_MS) return hit.promise;
  const promise = (async () => {
    let response;
    try {
      response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    } catch (err) {
      throw new ApiError(0, `the server could not be reached (${err.message})`);
    }
    if (!response.ok) {
      const error = await errorOf(response);
      if (error.status === 401 && session.onUnauthorized) session.onUnauthorized(error);
      throw error;
    }
    return response.json();
  })();
  kept.set(url, { at: now, promise });
  promise.catch(() => kept.delete(url));
  return promise;
}

export async function send(method, path, body, params = {}) {
  const qs = queryString(params);
  const response = await fetch(qs ? `${path}?${qs}` : path, {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

export async function dashboard() {
  if (!declared) declared = getJSON("/api/v1/dashboard", {}, { withWorkspace: false });
  const body = await declared;
  return body;
}

// The declaration of panel `id` (GET /api/v1/dashboard).
export async function panel(id) {
  const body = await dashboard();
  const found = [...body.panels, ...body.on_demand].find((p) => p.id === id);
  if (!found) throw new ApiError(0, `the server declares no panel ${id}`);
  return found;
}

// The result of panel `id`, its parameters overridden by `params` (null removes one).
export async function query(id, params = {}, options = {}) {
  const declaration = await panel(id);
  const merged = { ...declaration.params };
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") delete merged[key];
    else merged[key] = value;
  }
  const path = declaration.analysis
    ? `/api/v1/analyses/${encodeURIComponent(declaration.analysis)}`
    : `/api/v1/metrics/${encodeURIComponent(declaration.metric)}`;
  return getJSON(path, merged, options);
}

// Every row of panel `id` (for CSV downloads of a paged or limited table).
export async function allRows(id, params = {}, options = {}) {
  return query(id, { ...params, offset: null, limit: 100000 }, options);
}
