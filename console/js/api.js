// The /v1 JSON API, as scepterctl uses it, with the console's session: the cookie travels by
// itself (same origin); every state-changing request carries the CSRF token in X-CSRF-Token.

let csrf = null;
let onExpired = () => {};

export function setCsrf(token) { csrf = token; }
export function whenExpired(fn) { onExpired = fn; }

// An API error: status, message and the field it names (the server's {"error", "field"}).
export class ApiError extends Error {
  constructor(status, message, field, body) {
    super(message);
    this.status = status;
    this.field = field || null;
    this.body = body || null;
  }
}

export async function api(method, path, body, opts = {}) {
  const headers = { Accept: opts.accept || "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD" && csrf) headers["X-CSRF-Token"] = csrf;
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `the server did not answer (${e.message})`, null);
  }
  const type = res.headers.get("Content-Type") || "";
  let data = null;
  if (res.status !== 204) {
    if (type.includes("json")) data = await res.json().catch(() => null);
    else data = await res.text();
  }
  if (!res.ok) {
    const msg = data && typeof data === "object" && data.error ? data.error : `HTTP ${res.status}`;
    const field = data && typeof data === "object" ? data.field : null;
    const err = new ApiError(res.status, msg, field, data);
    if (res.status === 401 && !opts.signingIn) onExpired(err);
    throw err;
  }
  return data;
}

export const get = (p, o) => api("GET", p, undefined, o);
export const post = (p, b, o) => api("POST", p, b, o);
export const put = (p, b, o) => api("PUT", p, b, o);
export const del = (p, o) => api("DELETE", p, undefined, o);

// A query string from an object, leaving out empty values.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") u.set(k, v);
  const s = u.toString();
  return s ? `?${s}` : "";
}
