// The request log: a paged, filtered table from /admin/requests with cache and guardrail
// badges, and a detail view of one request (#/requests/<id>). The filters and the page
// live in the URL hash (#/requests?model=x&status=5xx&offset=25), so a filtered view
// survives a reload and can be shared; changing them is changing the hash.

import { explain, get, query, utcTime } from "../api.js";
import { field, h, money, mount, notice, select, show, table } from "../dom.js";

const PAGE = 25;

/** The filters kept in the hash, as the form names them. */
const FILTERS = ["key", "model", "status", "from", "to", "cache_hit"];

const tokens = (r) =>
  r.prompt_tokens == null && r.completion_tokens == null
    ? null
    : Number(r.prompt_tokens ?? 0) + Number(r.completion_tokens ?? 0);

const when = (t) => show(t && String(t).replace("T", " ").slice(0, 19));

function findingsOf(guard) {
  return guard && Array.isArray(guard.findings) ? guard.findings : [];
}

function badges(r) {
  const out = [];
  const cache = r.cache ? String(r.cache).toLowerCase() : null;
  if (cache) {
    const hit = cache === "hit" || cache === "semantic";
    out.push(h("span", { class: `badge ${hit ? "cache-hit" : "cache"}` }, `cache ${cache}`));
  }
  const guard = r.guardrails ?? null;
  if (guard) {
    const found = findingsOf(guard);
    const entities = [...new Set(found.map((f) => f.entity).filter(Boolean))];
    const denied = found.some((f) => f.action === "deny");
    const words = entities.length ? `guardrail ${denied ? "deny" : "flag"}: ${entities.join(", ")}` : "guardrail";
    out.push(h("span", { class: "badge guardrail", title: "guardrail results on this request" }, words));
  }
  return out;
}

export async function requestsPage(root, [id], params) {
  if (id) return detail(root, id);
  const state = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? ""]));
  const offset = Math.max(0, Number.parseInt(params.get("offset") ?? "0", 10) || 0);
  const status = h("div", { id: "requests-status" });
  const listing = h("div", { id: "requests-list" }, "Loading…");

  let keys = [];
  try {
    keys = (await get("/virtual-keys?limit=500")).data ?? [];
  } catch (err) {
    mount(status, notice("error", err.message));
  }
  const keyName = (kid) => keys.find((k) => k.id === kid)?.name ?? kid;

  const keyField = select("Key", "key", [["", "any key"], ...keys.map((k) => [k.id, k.name])]);
  const modelField = field("Model", "model", { placeholder: "exact model name" });
  const statusField = field("Status", "status", { placeholder: "200 or 4xx", list: "status-classes" });
  const fromField = field("From (UTC)", "from", { type: "datetime-local", step: 1 });
  const toField = field("To (UTC, exclusive)", "to", { type: "datetime-local", step: 1 });
  const cacheField = select("Cache", "cache_hit", [
    ["", "hits and misses"],
    ["true", "cache hits"],
    ["false", "not from the cache"],
  ]);
  const fields = [keyField, modelField, statusField, fromField, toField, cacheField];
  for (const f of fields) {
    const name = f.input.name;
    f.input.id = `filter-${name.replace("_", "-")}`;
    f.setAttribute("for", f.input.id);
    f.input.value = state[name];
  }
  // A key the list does not hold (deleted since, or beyond the first 500) stays selected.
  if (state.key && !keys.some((k) => k.id === state.key)) {
    keyField.input.appendChild(h("option", { value: state.key }, state.key));
    keyField.input.value = state.key;
  }
  const form = h(
    "form",
    { id: "request-filters", class: "card" },
    h("div", { class: "grid" }, fields),
    h(
      "datalist",
      { id: "status-classes" },
      ["2xx", "4xx", "5xx", "200", "400", "429", "500"].map((v) => h("option", { value: v })),
    ),
    h("button", { type: "submit" }, "Apply"),
    " ",
    h("a", { href: "#/requests", id: "clear-filters" }, "clear"),
  );
  const navigate = (next) => {
    const hash = `#/requests${query(next)}`;
    if (location.hash === hash) load();
    else location.hash = hash;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(Object.fromEntries(fields.map((f) => [f.input.name, f.input.value.trim()])));
  });
  for (const f of [keyField, cacheField]) f.input.addEventListener("change", () => form.requestSubmit());

  mount(root, h("h1", {}, "Request log"), status, form, listing);

  async function load() {
    const ask = { ...state, limit: PAGE, offset };
    if (ask.from) ask.from = utcTime(ask.from);
    if (ask.to) ask.to = utcTime(ask.to);
    let page;
    try {
      page = await get(`/requests${query(ask)}`);
    } catch (err) {
      listing.dataset.shown = location.hash;
      mount(listing, notice("error", explain(err, "/requests")));
      return;
    }
    const total = page.total ?? 0;
    const at = (n) => () => navigate({ ...state, offset: n });
    const prev = h("button", { type: "button", id: "prev-page", disabled: offset === 0, onclick: at(Math.max(0, offset - PAGE)) }, "Previous");
    const next = h("button", { type: "button", id: "next-page", disabled: offset + PAGE >= total, onclick: at(offset + PAGE) }, "Next");
    const filtered = FILTERS.some((k) => state[k]);
    // Which view this listing shows (the browser tests wait for it after a change).
    listing.dataset.shown = location.hash;
    mount(
      listing,
      table(
        [
          ["Time (UTC)", (r) => when(r.created_at)],
          ["Key", (r) => show(r.api_key_id && keyName(r.api_key_id))],
          ["Model", (r) => show(r.model)],
          ["Provider", (r) => show(r.provider)],
          ["Status", (r) => show(r.status_code)],
          ["Latency", (r) => (r.latency_ms == null ? "—" : `${Math.round(r.latency_ms)} ms`)],
          ["Tokens", (r) => show(tokens(r))],
          ["Cost", (r) => money(r.cost_usd)],
          ["", (r) => badges(r)],
          ["", (r) => h("a", { href: `#/requests/${encodeURIComponent(r.id)}`, class: "details" }, "details")],
        ],
        page.data ?? [],
        { id: "requests-table" },
      ),
      h(
        "p",
        { class: "pager", id: "requests-pager" },
        prev,
        total === 0
          ? ` none${filtered ? " match these filters" : ""} `
          : ` ${offset + 1}–${Math.min(offset + PAGE, total)} of ${total} `,
        next,
      ),
    );
  }
  await load();
}

/** A logged body (JSON text, or SSE, or anything) as indented JSON when it is JSON. */
function pretty(body) {
  if (typeof body !== "string") return body;
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

/** A definition list of [term, value] pairs; objects shown as indented JSON, elements
 * (a link) as they are. */
function facts(id, pairs) {
  const shown = (v) =>
    v instanceof Node ? v : typeof v === "object" && v !== null ? JSON.stringify(v, null, 2) : show(v);
  return h(
    "dl",
    { class: "detail", id },
    pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, shown(v))]),
  );
}

async function detail(root, id) {
  mount(root, h("h1", {}, "Request"), h("p", {}, h("a", { href: "#/requests" }, "← request log")));
  let r;
  try {
    r = await get(`/requests/${encodeURIComponent(id)}`);
  } catch (err) {
    root.appendChild(notice("error", err.message));
    return;
  }
  const resp = r.response ?? {};
  const found = findingsOf(r.guardrails);
  root.appendChild(
    h(
    "div",
    { id: "request-view" },
    h("p", {}, badges(r)),
    facts("request-detail", [
      ["id", r.id],
      ["request id", r.request_id],
      ["time (UTC)", when(r.created_at)],
      ["route", `${show(r.method)} ${show(r.route)}`],
      [
        "key",
        r.api_key_id
          ? h("a", { href: `#/requests${query({ key: r.api_key_id })}`, id: "request-key" }, r.api_key_id)
          : null,
      ],
      ["model", r.model],
      ["provider", r.provider],
      ["upstream model", r.upstream_model],
      ["stream", r.stream ? "yes" : "no"],
      ["status", r.status_code],
      ["cache", r.cache],
      ["cost", money(r.cost_usd)],
      ["saved by the cache", money(r.cost_saved_usd)],
    ]),
    h("h2", {}, "Response"),
    r.response
      ? facts("request-response", [
          ["status", resp.status_code],
          ["latency", resp.latency_ms == null ? null : `${Math.round(resp.latency_ms)} ms`],
          ["gateway overhead", resp.overhead_ms == null ? null : `${Number(resp.overhead_ms).toFixed(1)} ms`],
          ["tokens (prompt / completion / total)", `${show(resp.prompt_tokens)} / ${show(resp.completion_tokens)} / ${show(resp.total_tokens)}`],
          ["cached tokens", resp.cached_tokens],
          ["finish reason", resp.finish_reason],
          ["error", resp.error_type ? `${resp.error_type}: ${show(resp.error_message)}` : null],
          ["bytes out", resp.bytes_out],
          ["body", pretty(resp.body) ?? "(not logged: log_bodies is off)"],
        ])
      : h("p", { class: "muted" }, "No response was recorded."),
    h("h2", {}, "Attempts"),
    table(
      [
        ["Provider", (a) => show(a.provider)],
        ["Model", (a) => show(a.model)],
        ["Status", (a) => show(a.status ?? a.skipped)],
        ["Latency", (a) => (a.latency_ms == null ? "—" : `${a.latency_ms} ms`)],
        ["Error", (a) => show([a.error, a.message, a.detail].filter(Boolean).join(": "))],
      ],
      r.attempts ?? [],
      { id: "request-attempts" },
    ),
    h("h2", {}, "Guardrails"),
    r.guardrails
      ? [
          table(
            [
              ["Stage", (f) => show(f.stage)],
              ["Guardrail", (f) => show(f.guardrail)],
              ["Entity", (f) => show(f.entity)],
              ["Action", (f) => show(f.action)],
              ["Count", (f) => show(f.count)],
            ],
            found,
            { id: "request-guardrails" },
          ),
          r.guardrails.content_safety ? facts("request-safety", [["content safety", r.guardrails.content_safety]]) : null,
        ]
      : h("p", { class: "muted", id: "request-guardrails" }, "No guardrail results on this request."),
    h("h2", {}, "Request body"),
    facts("request-body", [["body", pretty(r.request_body) ?? "(not logged: log_bodies is off)"]]),
    ),
  );
}
