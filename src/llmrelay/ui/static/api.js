// The admin REST API as the UI calls it: the token typed at login (sessionStorage, so it
// ends with the tab), sent as a Bearer token; every failure becomes an ApiError whose
// message is the API's own error.message, ready to show as plain text.

const TOKEN = "llmrelay.admin.token";

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
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

/** Call /admin + path; resolve to the parsed JSON body, reject with an ApiError. */
export async function call(method, path, body, bearer) {
  const headers = { authorization: `Bearer ${bearer ?? token() ?? ""}` };
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
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && data.error;
    const message = error && error.message ? error.message : `HTTP ${response.status}`;
    throw new ApiError(message, response.status, error ? error.code : null);
  }
  return data;
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

/** The words to show for a failed call of path: the API's message, and for a 404 of the
 * whole endpoint (an older gateway) which endpoint is missing. */
export function explain(err, path) {
  if (err instanceof ApiError && err.status === 404 && err.code !== "not_found") {
    return `This gateway has no /admin${path} endpoint (the API answered: ${err.message}).`;
  }
  return err.message;
}
