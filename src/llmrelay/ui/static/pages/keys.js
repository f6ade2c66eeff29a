// Virtual keys: list (team and status filters), create (the secret shown once, with a
// copy button), rotate, disable / enable, edit limits.

import { del, get, patch, post, put, query } from "../api.js";
import { busy, field, h, money, mount, notice, select, show, table, values } from "../dom.js";

const LIMITS = [
  ["Requests / minute", "rate_limit"],
  ["Tokens / minute", "tpm_limit"],
  ["Monthly budget (USD)", "budget_limit_usd"],
  ["Daily budget (USD)", "daily_budget_usd"],
];

/** A secret shown once: the text, a copy button, and a warning. */
export function secretBox(title, secret) {
  const copied = h("span", { class: "muted" });
  const copy = h(
    "button",
    {
      type: "button",
      id: "copy-secret",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(secret);
          copied.textContent = "Copied.";
        } catch {
          copied.textContent = "Copy failed: select the key and copy it by hand.";
        }
      },
    },
    "Copy",
  );
  return h(
    "div",
    { class: "notice ok secret", id: "secret-box" },
    h("strong", {}, title),
    h("p", {}, "This is the only time the key is shown. Store it now."),
    h("code", { id: "secret" }, secret),
    " ",
    copy,
    " ",
    copied,
  );
}

export async function keysPage(root) {
  const status = h("div", { id: "keys-status" });
  const listing = h("div", { id: "keys-list" });
  const teamFilter = select("Team", "team", [["", "any team"]], { id: "filter-team" });
  const statusFilter = select("Status", "status", [
    ["", "any status"],
    ["active", "active"],
    ["disabled", "disabled"],
  ]);
  statusFilter.input.id = "filter-status";
  const filters = h("form", { class: "filters", id: "key-filters" }, teamFilter, statusFilter);
  filters.addEventListener("change", () => load());

  let teams = [];
  try {
    teams = (await get("/teams?limit=500")).data;
  } catch (err) {
    mount(status, notice("error", err.message));
  }
  for (const t of teams) teamFilter.input.appendChild(h("option", { value: t.id }, t.name));
  const teamName = (id) => teams.find((t) => t.id === id)?.name ?? id;

  const createForm = h(
    "form",
    { id: "create-key", class: "card" },
    h("h2", {}, "New key"),
    h(
      "div",
      { class: "grid" },
      field("Name", "name", { required: true }),
      select("Team", "team", [["", "no team"], ...teams.map((t) => [t.id, t.name])]),
      field("Provider", "provider", { placeholder: "e.g. openai" }),
      field("Real provider key", "real_api_key", { type: "password", autocomplete: "off" }),
      LIMITS.map(([label, name]) =>
        field(label, name, { type: "number", min: name.endsWith("usd") ? 0 : 1, step: "any" }),
      ),
    ),
    h("button", { type: "submit" }, "Create key"),
  );
  createForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(createForm.querySelector("button"), status, async () => {
      const created = await post("/virtual-keys", values(createForm));
      createForm.reset();
      mount(status, secretBox(`Key "${created.name}" created.`, created.virtual_key));
      await load();
    });
  });

  mount(root, h("h1", {}, "Virtual keys"), status, createForm, filters, listing);

  // Loads overlap (a create's refresh, then a filter change): only the newest one may
  // draw the table, or an older answer arriving last would undo the filter.
  let latest = 0;

  async function load() {
    const mine = ++latest;
    const params = { team: teamFilter.input.value, status: statusFilter.input.value, limit: 500 };
    let page;
    try {
      page = await get(`/virtual-keys${query(params)}`);
    } catch (err) {
      if (mine === latest) mount(listing, notice("error", err.message));
      return;
    }
    if (mine !== latest) return;
    mount(
      listing,
      h("p", { class: "muted" }, `${page.total} key(s)`),
      table(
        [
          ["Name", (k) => h("span", { class: "key-name" }, k.name)],
          ["Prefix", (k) => h("code", {}, k.key_prefix)],
          ["Status", (k) => h("span", { class: `badge ${k.status}` }, k.status)],
          ["Team", (k) => show(k.team_id && teamName(k.team_id))],
          ["Provider", (k) => show(k.provider)],
          ["RPM", (k) => show(k.rate_limit)],
          ["TPM", (k) => show(k.tpm_limit)],
          ["Budget / month", (k) => money(k.budget_limit_usd)],
          ["", (k) => actions(k)],
        ],
        page.data,
        { id: "keys-table" },
      ),
    );
  }

  function actions(k) {
    const row = h("span", { class: "actions", dataset: { key: k.id } });
    const rotate = h("button", { type: "button", class: "rotate" }, "Rotate");
    rotate.addEventListener("click", () =>
      busy(rotate, status, async () => {
        if (!confirm(`Rotate the secret of "${k.name}"? The old one stops working.`)) return;
        const out = await put(`/virtual-keys/${encodeURIComponent(k.id)}/rotate`, {});
        mount(status, secretBox(`Key "${k.name}" rotated.`, out.virtual_key));
        await load();
      }),
    );
    const enabled = k.status !== "disabled";
    const toggle = h("button", { type: "button", class: "toggle" }, enabled ? "Disable" : "Enable");
    toggle.addEventListener("click", () =>
      busy(toggle, status, async () => {
        await patch(`/virtual-keys/${encodeURIComponent(k.id)}`, {
          status: enabled ? "disabled" : "active",
        });
        mount(status, notice("ok", `Key "${k.name}" ${enabled ? "disabled" : "enabled"}.`));
        await load();
      }),
    );
    const edit = h("button", { type: "button", class: "edit" }, "Limits");
    edit.addEventListener("click", () => {
      const form = limitsForm(k, async (body) => {
        await patch(`/virtual-keys/${encodeURIComponent(k.id)}`, body);
        mount(status, notice("ok", `Limits of "${k.name}" saved.`));
        await load();
      });
      mount(status, form);
    });
    const remove = h("button", { type: "button", class: "danger" }, "Delete");
    remove.addEventListener("click", () =>
      busy(remove, status, async () => {
        if (!confirm(`Delete "${k.name}"? Clients using it are refused at once.`)) return;
        await del(`/virtual-keys/${encodeURIComponent(k.id)}`);
        mount(status, notice("ok", `Key "${k.name}" deleted.`));
        await load();
      }),
    );
    return mount(row, rotate, toggle, edit, remove);
  }

  await load();
}

/** A form for the limits of a key or team; an emptied field clears the limit (null). */
export function limitsForm(item, save) {
  const status = h("div");
  const fields = LIMITS.map(([label, name]) => {
    const f = field(label, name, { type: "number", step: "any", min: 0 });
    f.input.value = item[name] ?? "";
    return f;
  });
  const form = h(
    "form",
    { class: "card", id: "limits-form" },
    h("h2", {}, `Limits of "${item.name}"`),
    h("div", { class: "grid" }, fields),
    h("button", { type: "submit" }, "Save"),
    status,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = {};
    for (const f of fields) {
      const raw = f.input.value.trim();
      body[f.input.name] = raw === "" ? null : Number(raw);
    }
    busy(form.querySelector("button"), status, () => save(body));
  });
  return form;
}
