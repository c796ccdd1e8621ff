// Calls to the admin API with the session cookie; state changes carry the CSRF token.

let csrf = null;
let onSignedOut = () => {};

/** Remembers the session's CSRF token. */
export function setCsrf(token) {
  csrf = token;
}

/** What to do when the server says the session is gone. */
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

/** An API error: `status`, the server's `message` and, for rules, the `field` it names. */
export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

/** Calls `method path` with an optional JSON body; resolves to the parsed answer. */
export async function call(method, path, body) {
  const headers = {};
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const type = r.headers.get('content-type') || '';
  const data = type.includes('json') ? await r.json() : await r.text();
  if (r.status === 401 && path !== '/ui/session') onSignedOut();
  if (!r.ok) {
    const message = (data && data.error) || `${method} ${path}: HTTP ${r.status}`;
    throw new ApiError(r.status, message, data && data.field);
  }
  return data;
}

/** GET with query parameters (empty ones left out). */
export function get(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== '' && v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return call('GET', s ? `${path}?${s}` : path);
}
