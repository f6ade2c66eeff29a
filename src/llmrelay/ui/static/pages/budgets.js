// Budgets and what remains of them: /admin/usage/budgets when the gateway has it, else
// the limits of each key as the key objects carry them.

import { ApiError, get } from "../api.js";
import { h, money, mount, notice, table } from "../dom.js";

function remaining(limit, spent) {
  if (limit === null || limit === undefined) return "no limit";
  if (spent === null || spent === undefined) return money(limit);
  return money(Number(limit) - Number(spent));
}

export async function budgetsPage(root) {
  const where = h("div", { id: "budgets-list" });
  mount(root, h("h1", {}, "Budgets"), where);
  let rows;
  let source = "/admin/usage/budgets";
  try {
    const answer = await get("/usage/budgets");
    rows = answer.data ?? answer;
    if (answer.period) source += `, month ${answer.period} (UTC)`;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) {
      mount(where, notice("error", err.message));
      return;
    }
    try {
      rows = (await get("/virtual-keys?limit=500")).data;
      source = "the keys' own limits (this gateway has no /admin/usage/budgets)";
    } catch (err2) {
      mount(where, notice("error", err2.message));
      return;
    }
  }
  const spentOf = (r) => r.spent_usd ?? r.monthly_spent_usd ?? r.budget_spent_usd;
  const limitOf = (r) => r.budget_limit_usd ?? r.limit_usd ?? r.monthly_budget_usd;
  mount(
    where,
    h("p", { class: "muted" }, `From ${source}.`),
    table(
      [
        ["Key", (r) => r.name ?? r.key_name ?? r.id],
        ["Monthly budget", (r) => money(limitOf(r))],
        ["Spent this month", (r) => money(spentOf(r))],
        ["Remaining", (r) => r.remaining_usd !== undefined ? money(r.remaining_usd) : remaining(limitOf(r), spentOf(r))],
        ["State", (r) => (r.limit_state ? h("span", { class: `badge ${r.limit_state}` }, r.limit_state.replace("_", " ")) : "—")],
      ],
      rows,
      { id: "budgets-table" },
    ),
  );
}
