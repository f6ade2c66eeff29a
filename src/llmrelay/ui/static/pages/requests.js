// The request log: a paged table from /admin/requests with cache and guardrail badges,
// and a detail view of one request (#/requests/<id>).

import { explain, get, query } from "../api.js";
import { h, money, mount, notice, show, table } from "../dom.js";

const tokens = (r) =>
  r.prompt_tokens == null && r.completion_tokens == null
    ? null
    : Number(r.prompt_tokens ?? 0) + Number(r.completion_tokens ?? 0);

const PAGE = 25;

function badges(r) {
  const out = [];
  const cache = r.cache ? String(r.cache).toLowerCase() : null;
  if (cache) {
    const hit = cache === "hit" || cache === "semantic";
    out.push(h("span", { class: `badge ${hit ? "cache-hit" : "cache"}` }, `cache ${cache}`));
  }
  const guard = r.guardrails ?? r.guardrail ?? null;
  if (guard) out.push(h("span", { class: "badge guardrail" }, "guardrail"));
  return out;
}

function statusOf(r) {
  return r.status_code ?? r.status ?? null;
}

export async function requestsPage(root, [id]) {
  if (id) return detail(root, id);
  let offset = 0;
  const listing = h("div", { id: "requests-list" });
  mount(root, h("h1", {}, "Request log"), listing);

  // Only the newest of overlapping loads may draw (an older answer could be stale).
  let latest = 0;

  async function load() {
    const mine = ++latest;
    let page;
    try {
      page = await get(`/requests${query({ limit: PAGE, offset })}`);
    } catch (err) {
      if (mine === latest) mount(listing, notice("error", explain(err, "/requests")));
      return;
    }
    if (mine !== latest) return;
    const prev = h("button", { type: "button", disabled: offset === 0 }, "Previous");
    const next = h(
      "button",
      { type: "button", disabled: offset + PAGE >= (page.total ?? 0) },
      "Next",
    );
    prev.addEventListener("click", () => ((offset = Math.max(0, offset - PAGE)), load()));
    next.addEventListener("click", () => ((offset += PAGE), load()));
    mount(
      listing,
      table(
        [
          ["Time (UTC)", (r) => show(r.created_at && String(r.created_at).replace("T", " ").slice(0, 19))],
          ["Model", (r) => show(r.model)],
          ["Provider", (r) => show(r.provider)],
          ["Status", (r) => show(statusOf(r))],
          ["Latency", (r) => (r.latency_ms == null ? "—" : `${Math.round(r.latency_ms)} ms`)],
          ["Tokens", (r) => show(r.total_tokens ?? tokens(r))],
          ["Cost", (r) => money(r.cost_usd)],
          ["", (r) => badges(r)],
          ["", (r) => h("a", { href: `#/requests/${encodeURIComponent(r.id)}` }, "details")],
        ],
        page.data ?? [],
        { id: "requests-table" },
      ),
      h(
        "p",
        { class: "pager" },
        prev,
        ` ${offset + 1}–${Math.min(offset + PAGE, page.total ?? 0)} of ${page.total ?? 0} `,
        next,
      ),
    );
  }
  await load();
}

async function detail(root, id) {
  mount(root, h("h1", {}, "Request"), h("p", {}, h("a", { href: "#/requests" }, "← back")));
  try {
    const r = await get(`/requests/${encodeURIComponent(id)}`);
    root.appendChild(
      h(
        "dl",
        { class: "detail", id: "request-detail" },
        Object.entries(r).map(([k, v]) => [
          h("dt", {}, k),
          h("dd", {}, typeof v === "object" && v !== null ? JSON.stringify(v, null, 2) : show(v)),
        ]),
      ),
    );
  } catch (err) {
    root.appendChild(notice("error", err.message));
  }
}
