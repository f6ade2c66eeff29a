// Usage per day and per model from /admin/usage, as charts and tables.

import { explain, get, query } from "../api.js";
import { h, money, mount, notice, show, table } from "../dom.js";
import { barChart } from "../chart.js";

/** A usage row's cost in USD, whichever of the API's spellings it carries. */
export function costOf(row) {
  if (row.cost_usd !== undefined) return Number(row.cost_usd);
  if (row.cost !== undefined) return Number(row.cost);
  if (row.cost_nanos !== undefined) return Number(row.cost_nanos) / 1e9;
  return 0;
}

function tokensOf(row) {
  if (row.total_tokens !== undefined) return Number(row.total_tokens);
  return Number(row.prompt_tokens ?? 0) + Number(row.completion_tokens ?? 0);
}

function rowsOf(answer) {
  if (Array.isArray(answer)) return answer;
  return answer?.data ?? answer?.rows ?? [];
}

async function section(root, by, title) {
  const where = h("div", { id: `usage-${by}` }, h("h2", {}, title), "Loading…");
  root.appendChild(where);
  let rows;
  try {
    rows = rowsOf(await get(`/usage${query({ group_by: by })}`));
  } catch (err) {
    mount(where, h("h2", {}, title), notice("error", explain(err, "/usage")));
    return;
  }
  const label = (r) => String(r[by] ?? r.day ?? r.date ?? r.model ?? "?");
  const sorted = by === "day" ? [...rows].sort((a, b) => (label(a) < label(b) ? -1 : 1)) : rows;
  mount(
    where,
    h("h2", {}, title),
    barChart(
      sorted.map((r) => [label(r), Number(r.requests ?? 0)]),
      { title: `${title}: requests`, id: `chart-${by}` },
    ),
    table(
      [
        [by === "day" ? "Day" : "Model", (r) => label(r)],
        ["Requests", (r) => show(r.requests)],
        ["Tokens", (r) => show(tokensOf(r))],
        ["Cost", (r) => money(costOf(r))],
      ],
      sorted,
    ),
  );
}

export async function usagePage(root) {
  mount(root, h("h1", {}, "Usage"));
  await section(root, "day", "Per day");
  await section(root, "model", "Per model");
}
