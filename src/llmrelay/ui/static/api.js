// The admin REST API as the UI calls it: the token typed at login (sessionStorage, so it
// ends with the tab), sent as a Bearer token; every failure becomes an ApiError whose
// message is the API's own error.message, ready to show as plain text.

const TOKEN = "llmrelay.admin.token";

export class ApiError extends Error {
  constructor(message, status, code, param) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param ?? null; // the field a 4xx names ("base_url", "targets[1].weight")
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN);
}

/** fetch /admin + path with the token; resolve to the Response, reject with an ApiError
 * (the API's own message) when it is not a 2xx. */
async function send(method, path, body, bearer, accept) {
  const headers = { authorization: `Bearer ${bearer ?? token() ?? ""}` };
  if (accept) headers.accept = accept;
  const init = { method, headers };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/admin${path}`, init);
  } catch (err) {
    throw new ApiError(`The gateway could not be reached (${err.message}).`, 0, null);
  }
  if (!response.ok) {
    const data = parse(await response.text());
    const error = data && data.error;
    const message = error && error.message ? error.message : `HTTP ${response.status}`;
    throw new ApiError(message, response.status, error ? error.code : null, error ? error.param : null);
  }
  return response;
}

function parse(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** Call /admin + path; resolve to the parsed JSON body, reject with an ApiError. */
export async function call(method, path, body, bearer) {
  const response = await send(method, path, body, bearer);
  return parse(await response.text());
}

/** GET /admin + path as a file: the token goes in the header (it is in no cookie, so a
 * plain link could not carry it), the body is saved through a Blob URL under the name
 * the answer's Content-Disposition gives (else fallback). */
export async function download(path, fallback) {
  const response = await send("GET", path, undefined, undefined, "text/csv");
  const blob = await response.blob();
  const disposition = response.headers.get("content-disposition") ?? "";
  const named = /filename="?([^";]+)"?/.exec(disposition);
  const filename = named ? named[1] : fallback;
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  // Revoked later: some browsers read the URL after click() has returned.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { filename, size: blob.size };
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body ?? {});
export const patch = (path, body) => call("PATCH", path, body);
export const put = (path, body) => call("PUT", path, body ?? {});
export const del = (path) => call("DELETE", path);

/** A query string of the set values of params ("" when none is set). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** A datetime-local value (read as UTC) as the API's ISO time; anything else as typed,
 * for the API to refuse in its own words. */
export function utcTime(value) {
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(value)) return `${value}:00Z`;
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$/.test(value)) return `${value}Z`;
  return value;
}

/** The words to show for a failed call of path: the API's message, and for a 404 of the
 * whole endpoint (an older gateway) which endpoint is missing. */
export function explain(err, path) {
  if (err instanceof ApiError && err.status === 404 && err.code !== "not_found") {
    return `This gateway has no /admin${path} endpoint (the API answered: ${err.message}).`;
  }
  return err.message;
}
