// Teams: list, create with limits, edit limits.

import { get, patch, post } from "../api.js";
import { busy, field, h, money, mount, notice, show, table, values } from "../dom.js";
import { limitsForm } from "./keys.js";

export async function teamsPage(root) {
  const status = h("div", { id: "teams-status" });
  const listing = h("div", { id: "teams-list" });
  const form = h(
    "form",
    { id: "create-team", class: "card" },
    h("h2", {}, "New team"),
    h(
      "div",
      { class: "grid" },
      field("Name", "name", { required: true }),
      field("Requests / minute", "rate_limit", { type: "number", min: 1 }),
      field("Tokens / minute", "tpm_limit", { type: "number", min: 1 }),
      field("Monthly budget (USD)", "budget_limit_usd", { type: "number", min: 0, step: "any" }),
    ),
    h("button", { type: "submit" }, "Create team"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form.querySelector("button"), status, async () => {
      const team = await post("/teams", values(form));
      form.reset();
      mount(status, notice("ok", `Team "${team.name}" created.`));
      await load();
    });
  });
  mount(root, h("h1", {}, "Teams"), status, form, listing);

  // Only the newest of overlapping loads may draw (an older answer could be stale).
  let latest = 0;

  async function load() {
    const mine = ++latest;
    let page;
    try {
      page = await get("/teams?limit=500");
    } catch (err) {
      if (mine === latest) mount(listing, notice("error", err.message));
      return;
    }
    if (mine !== latest) return;
    mount(
      listing,
      table(
        [
          ["Name", (t) => t.name],
          ["Keys", (t) => show(t.keys)],
          ["RPM", (t) => show(t.rate_limit)],
          ["TPM", (t) => show(t.tpm_limit)],
          ["Budget / month", (t) => money(t.budget_limit_usd)],
          ["Budget / day", (t) => money(t.daily_budget_usd)],
          [
            "",
            (t) => {
              const edit = h("button", { type: "button", class: "edit" }, "Limits");
              edit.addEventListener("click", () =>
                mount(
                  status,
                  limitsForm(t, async (body) => {
                    await patch(`/teams/${encodeURIComponent(t.id)}`, body);
                    mount(status, notice("ok", `Limits of "${t.name}" saved.`));
                    await load();
                  }),
                ),
              );
              return edit;
            },
          ],
        ],
        page.data,
        { id: "teams-table" },
      ),
    );
  }
  await load();
}
