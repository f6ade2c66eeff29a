// Teams: list (the key count links to the keys page filtered by the team), create with
// limits, edit limits, delete (a team that still has keys: the API's refusal, then a
// second confirmation deletes it anyway and its keys stay, without a team).

import { del, get, patch, post, query } from "../api.js";
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
          ["Keys", (t) => h("a", { href: `#/keys${query({ team: t.id })}`, class: "team-keys" }, show(t.keys))],
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
              return h("span", { class: "actions" }, edit, remover(t));
            },
          ],
        ],
        page.data,
        { id: "teams-table" },
      ),
    );
  }
  function remover(t) {
    const remove = h("button", { type: "button", class: "danger" }, "Delete");
    const path = `/teams/${encodeURIComponent(t.id)}`;
    remove.addEventListener("click", () =>
      busy(remove, status, async () => {
        if (!confirm(`Delete team "${t.name}"?`)) return;
        try {
          await del(path);
        } catch (err) {
          if (err.code !== "team_has_keys") throw err;
          if (!confirm(`${err.message}\n\nDelete "${t.name}" anyway? Its keys stay, without a team.`)) {
            mount(status, notice("error", err.message));
            return;
          }
          await del(`${path}?force=true`);
        }
        await load(); // first: once the notice shows, the table holds the change
        mount(status, notice("ok", `Team "${t.name}" deleted.`));
      }),
    );
    return remove;
  }

  await load();
}
