// Usage per day and per model from /admin/usage (the daily rollups), as SVG bar charts
// and tables. Per day: ?group=day&by= (one row a day); per model: ?group=day&by=model,
// summed over the days here (the API has no "all time" group). "Download CSV" saves the
// same 30 days per day, key, team, model and provider (?format=csv), fetched with the
// token and saved through a Blob URL: a plain link would carry no Authorization header.

import { download, explain, get, query } from "../api.js";
import { barChart } from "../chart.js";
import { h, money, mount, notice, show, table } from "../dom.js";

const DAYS = 30;

/** A usage row's cost in USD, from the exact nanos when present. */
export function costOf(row) {
  if (row.cost_nanos !== undefined && row.cost_nanos !== null) return Number(row.cost_nanos) / 1e9;
  return Number(row.cost_usd ?? 0);
}

const tokensOf = (r) => Number(r.prompt_tokens ?? 0) + Number(r.completion_tokens ?? 0);

/** Rows summed by label(row): requests, tokens, cost, cache hits, errors. */
function sumBy(rows, label) {
  const out = new Map();
  for (const r of rows) {
    const k = label(r);
    const s = out.get(k) ?? { label: k, requests: 0, tokens: 0, cost: 0, cache_hits: 0, errors: 0 };
    s.requests += Number(r.requests ?? 0);
    s.tokens += tokensOf(r);
    s.cost += costOf(r);
    s.cache_hits += Number(r.cache_hits ?? 0);
    s.errors += Number(r.errors ?? 0);
    out.set(k, s);
  }
  return [...out.values()];
}

function since() {
  const d = new Date(Date.now() - (DAYS - 1) * 86400_000);
  return d.toISOString().slice(0, 10);
}

async function section(root, id, title, params, label, metric) {
  const where = h("div", { id }, h("h2", {}, title), "Loading…");
  root.appendChild(where);
  let rows;
  try {
    rows = (await get(`/usage${query({ group: "day", from: since(), limit: 500, ...params })}`)).data ?? [];
  } catch (err) {
    mount(where, h("h2", {}, title), notice("error", explain(err, "/usage")));
    return;
  }
  const sums = sumBy(rows, label);
  mount(
    where,
    h("h2", {}, title),
    barChart(
      sums.map((s) => [s.label, s[metric]]),
      { title: `${title}: ${metric}`, id: `chart-${id}`, format: metric === "cost" ? money : String },
    ),
    table(
      [
        [title.replace("Per ", "").replace(/^./, (c) => c.toUpperCase()), (s) => s.label],
        ["Requests", (s) => show(s.requests)],
        ["Tokens", (s) => show(s.tokens)],
        ["Cost", (s) => money(s.cost)],
        ["Cache hits", (s) => show(s.cache_hits)],
        ["Errors", (s) => show(s.errors)],
      ],
      sums,
      { id: `table-${id}` },
    ),
  );
}

function csvButton() {
  const status = h("span", { id: "usage-csv-status", class: "muted" });
  const button = h("button", { type: "button", id: "usage-csv" }, "Download CSV");
  button.addEventListener("click", async () => {
    button.disabled = true;
    mount(status);
    try {
      const path = `/usage${query({ group: "day", from: since(), format: "csv" })}`;
      const saved = await download(path, "llmrelay-usage.csv");
      mount(status, ` ${saved.filename} (${saved.size} bytes)`);
    } catch (err) {
      mount(status, notice("error", explain(err, "/usage")));
    } finally {
      button.disabled = false;
    }
  });
  return h("p", {}, button, status);
}

export async function usagePage(root) {
  mount(
    root,
    h("h1", {}, "Usage"),
    h("p", { class: "muted" }, `The last ${DAYS} days (UTC).`),
    csvButton(),
  );
  await section(root, "usage-day", "Per day", { by: "" }, (r) => String(r.period ?? r.day ?? "?"), "requests");
  await section(root, "usage-model", "Per model", { by: "model" }, (r) => String(r.model || "(none)"), "cost");
}
