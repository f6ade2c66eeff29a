// Virtual keys: list (team and status filters), create (the secret shown once, with a
// copy button), rotate the secret (with an optional grace period) or a bound key's real
// provider key, disable / enable, edit limits, delete.

import { del, get, patch, post, put, query, utcTime } from "../api.js";
import { busy, field, h, money, mount, notice, select, show, table, values } from "../dom.js";

const LIMITS = [
  ["Requests / minute", "rate_limit"],
  ["Tokens / minute", "tpm_limit"],
  ["Monthly budget (USD)", "budget_limit_usd"],
  ["Daily budget (USD)", "daily_budget_usd"],
];

/** A secret shown once: the text, a copy button, and a warning. */
/** How long a rotated secret keeps working ([seconds, words]; the API allows 30 days). */
const GRACE = [
  ["0", "no: it stops at once"],
  ["3600", "1 hour"],
  ["86400", "1 day"],
  ["604800", "7 days"],
];

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

export async function keysPage(root, _path, params) {
  const status = h("div", { id: "keys-status" });
  const listing = h("div", { id: "keys-list" });
  const teamFilter = select("Team", "team", [["", "any team"]], { id: "filter-team" });
  const statusFilter = select("Status", "status", [
    ["", "any status"],
    ["active", "active"],
    ["disabled", "disabled"],
    ["expired", "expired"],
  ]);
  statusFilter.input.id = "filter-status";
  const filters = h("form", { class: "filters", id: "key-filters" }, teamFilter, statusFilter);
  // The filters are kept in the hash (#/keys?team=…) without a new route, so a reload or
  // a link from the teams page shows the same listing and a secret box stays up.
  filters.addEventListener("change", () => {
    const q = query({ team: teamFilter.input.value, status: statusFilter.input.value });
    history.replaceState(null, "", `#/keys${q}`);
    load();
  });

  let teams = [];
  try {
    teams = (await get("/teams?limit=500")).data;
  } catch (err) {
    mount(status, notice("error", err.message));
  }
  for (const t of teams) teamFilter.input.appendChild(h("option", { value: t.id }, t.name));
  teamFilter.input.value = params?.get("team") ?? "";
  statusFilter.input.value = params?.get("status") ?? "";
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
      field("Expires (UTC)", "expires_at", { type: "datetime-local" }),
    ),
    h("button", { type: "submit" }, "Create key"),
  );
  createForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(createForm.querySelector("button"), status, async () => {
      const body = values(createForm);
      if (body.expires_at) body.expires_at = utcTime(body.expires_at);
      const created = await post("/virtual-keys", body);
      createForm.reset();
      mount(status, secretBox(`Key "${created.name}" created.`, created.virtual_key));
      await load();
    }, createForm);
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
          ["Expires (UTC)", (k) => show(k.expires_at && String(k.expires_at).replace("T", " ").slice(0, 16))],
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
    rotate.addEventListener("click", () => mount(status, rotateForm(k)));
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

  /** Rotate the virtual secret (the old one stops at once or after a grace period), or,
   * for a key bound to a provider, replace its real provider key (clients change
   * nothing; the old real key is never shown, the new one goes to the API once). */
  function rotateForm(k) {
    const msg = h("div", { id: "rotate-status" });
    const path = `/virtual-keys/${encodeURIComponent(k.id)}/rotate`;
    const grace = select("The old secret keeps working", "grace_seconds", GRACE);
    const secretButton = h("button", { type: "submit", id: "rotate-secret" }, "Rotate secret");
    const secretForm = h(
      "form",
      { id: "rotate-secret-form" },
      h("div", { class: "grid" }, grace),
      secretButton,
    );
    secretForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const seconds = Number(grace.input.value);
      const until = seconds ? `keeps working for ${grace.input.selectedOptions[0].text}` : "stops working at once";
      busy(secretButton, msg, async () => {
        if (!confirm(`Rotate the secret of "${k.name}"? The old one ${until}.`)) return;
        const out = await put(path, seconds ? { grace_seconds: seconds } : {});
        mount(status, secretBox(`Key "${k.name}" rotated.`, out.virtual_key));
        await load();
      }, secretForm);
    });
    let realForm = null;
    if (k.provider) {
      const real = field("New real provider key", "new_api_key", { type: "password", autocomplete: "new-password", required: true });
      const realButton = h("button", { type: "submit", id: "rotate-real" }, "Replace real key");
      realForm = h(
        "form",
        { id: "rotate-real-form" },
        h("h2", {}, `Its ${k.provider} credential`),
        h("p", { class: "muted" }, k.has_real_api_key ? "A real key is set (it is never shown). The clients keep their virtual key." : "No real key is set: the provider's own is used."),
        h("div", { class: "grid" }, real),
        realButton,
      );
      realForm.addEventListener("submit", (event) => {
        event.preventDefault();
        busy(realButton, msg, async () => {
          await put(path, { new_api_key: real.input.value });
          mount(status, notice("ok", `The real ${k.provider} key of "${k.name}" was replaced; its virtual key is unchanged.`));
          await load();
        }, realForm);
      });
    }
    return h(
      "div",
      { class: "card", id: "rotate-form" },
      h("h2", {}, `Rotate "${k.name}"`),
      secretForm,
      realForm,
      msg,
    );
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
