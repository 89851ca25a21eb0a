// The one way the console talks to the REST API: same-origin credentials (the session
// cookie), the X-Requested-With header on unsafe methods (what the server's CSRF check
// asks), a 401 answered by one refresh of the session and then the login view, and every
// problem+json's detail handed to the caller as an ApiError to show.

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export class ApiError extends Error {
  constructor(status, title, detail, body = {}) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.body = body; // (the whole problem: a rule's syntax error has line, column, expected)
  }
}

let onSignedOut = () => {};

/** What to do when the session is gone for good (the app shows the login view). */
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

async function send(method, path, body) {
  const headers = { Accept: "application/json" };
  if (UNSAFE.has(method)) headers["X-Requested-With"] = "hongshan";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function problem(response) {
  let title = response.statusText;
  let detail = "";
  let body = {};
  try {
    body = await response.json();
    title = body.title || title;
    detail = body.detail || "";
  } catch {
    // (not JSON: the status says it)
  }
  return new ApiError(response.status, title, detail, body);
}

/** The session's access cookie is short-lived: renew it once from the refresh cookie. */
async function refreshed() {
  try {
    const response = await send("POST", "/api/auth/refresh");
    return response.ok;
  } catch {
    return false;
  }
}

export async function request(method, path, body, { quiet401 = false } = {}) {
  let response = await send(method, path, body);
  if (response.status === 401 && !path.startsWith("/api/auth/") && (await refreshed())) {
    response = await send(method, path, body);
  }
  if (response.status === 401 && !quiet401) onSignedOut();
  if (!response.ok) throw await problem(response);
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body ?? {});
export const put = (path, body) => request("PUT", path, body);
export const patch = (path, body) => request("PATCH", path, body);
export const remove = (path) => request("DELETE", path);

/** A query string of the set fields (empty ones left out). */
export function query(fields) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** A device's path in the REST API. */
export function devicePath(pk, dn) {
  return `/api/products/${encodeURIComponent(pk)}/devices/${encodeURIComponent(dn)}`;
}
