// Providers: list (YAML ones read-only), add one stored in the database, edit or delete a
// stored one, test one with a single small real call. The API never returns a provider's
// key, only a hint of it: the edit form's key field starts empty and replaces the key only
// when something is typed into it.

import { del, get, patch, post } from "../api.js";
import { busy, field, h, mount, notice, select, show, table, values } from "../dom.js";

const TYPES = ["openai_compatible", "openai", "anthropic", "gemini", "azure", "bedrock", "vertex"];

export async function providersPage(root) {
  const status = h("div", { id: "providers-status" });
  const listing = h("div", { id: "providers-list" });
  const form = h(
    "form",
    { id: "create-provider", class: "card" },
    h("h2", {}, "Add a provider"),
    h(
      "div",
      { class: "grid" },
      field("Name", "name", { required: true }),
      select("Type", "type", TYPES.map((t) => [t, t])),
      field("Base URL", "base_url", { type: "url", placeholder: "base URL of the API, ending in /v1" }),
      field("API key", "api_key", { type: "password", autocomplete: "off" }),
    ),
    h("button", { type: "submit" }, "Add provider"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form.querySelector("button"), status, async () => {
      const made = await post("/providers", values(form));
      form.reset();
      await load(); // first: once the notice shows, the table holds the change
      mount(status, notice("ok", `Provider "${made.name}" added.`));
    }, form);
  });
  mount(root, h("h1", {}, "Providers"), status, form, listing);

  // Only the newest of overlapping loads may draw (an older answer could be stale).
  let latest = 0;

  async function load() {
    const mine = ++latest;
    let page;
    try {
      page = await get("/providers?limit=500");
    } catch (err) {
      if (mine === latest) mount(listing, notice("error", err.message));
      return;
    }
    if (mine !== latest) return;
    mount(
      listing,
      table(
        [
          ["Name", (p) => p.name],
          ["Type", (p) => p.type],
          ["Source", (p) => (p.read_only ? `${p.source} (read-only)` : p.source)],
          ["Enabled", (p) => (p.enabled ? "yes" : "no")],
          ["Base URL", (p) => show(p.base_url)],
          ["Key", (p) => (p.api_key_set ? show(p.api_key_hint) : "not set")],
          ["Test", (p) => tester(p)],
          ["", (p) => (p.read_only ? h("span", { class: "muted" }, "in the config file") : changer(p))],
        ],
        page.data,
        { id: "providers-table" },
      ),
    );
  }

  function tester(p) {
    const result = h("span", { class: "test-result" });
    const button = h("button", { type: "button", class: "test" }, "Test");
    button.addEventListener("click", () =>
      busy(button, result, async () => {
        mount(result, "testing…");
        const out = await post(`/providers/${encodeURIComponent(p.name)}/test`, {});
        const words = out.ok
          ? `OK: ${out.call ?? "call"} ${out.model ? `to ${out.model} ` : ""}in ${Math.round(out.latency_ms)} ms`
          : `Failed${out.status ? ` (HTTP ${out.status})` : ""}: ${out.error ?? out.error_class}`;
        mount(result, h("span", { class: `badge ${out.ok ? "active" : "disabled"}` }, words));
      }),
    );
    return h("span", { dataset: { provider: p.name } }, button, " ", result);
  }
  function changer(p) {
    const edit = h("button", { type: "button", class: "edit" }, "Edit");
    edit.addEventListener("click", () => mount(status, editForm(p)));
    const remove = h("button", { type: "button", class: "danger" }, "Delete");
    remove.addEventListener("click", () =>
      busy(remove, status, async () => {
        if (!confirm(`Delete provider "${p.name}"? Calls routed to it fail from now on.`)) return;
        await del(`/providers/${encodeURIComponent(p.name)}`);
        await load();
        mount(status, notice("ok", `Provider "${p.name}" deleted.`));
      }),
    );
    return h("span", { class: "actions", dataset: { provider: p.name } }, edit, remove);
  }

  /** PATCH only what changed: an emptied field goes back to its default (null), the key
   * only when a new one is typed (the old one is never shown, not even to this form). */
  function editForm(p) {
    const msg = h("div", { id: "edit-provider-status" });
    const type = select("Type", "type", TYPES.map((t) => [t, t]));
    type.input.value = p.type;
    const base = field("Base URL", "base_url", { type: "url" });
    base.input.value = p.base_url ?? "";
    const timeout = field("Timeout (s)", "timeout", { type: "number", min: 0, step: "any" });
    timeout.input.value = p.timeout ?? "";
    const key = field("New API key", "api_key", {
      type: "password",
      autocomplete: "new-password",
      placeholder: p.api_key_set ? `keep the current key (${p.api_key_hint ?? "set"})` : "no key set",
    });
    const enabled = h("input", { type: "checkbox", name: "enabled", id: "f-enabled" });
    enabled.checked = Boolean(p.enabled);
    for (const f of [type, base, timeout, key]) f.input.id = `edit-${f.input.name}`;
    const form = h(
      "form",
      { class: "card", id: "edit-provider" },
      h("h2", {}, `Edit provider "${p.name}"`),
      h(
        "div",
        { class: "grid" },
        type,
        base,
        timeout,
        key,
        h("label", { class: "check", for: "f-enabled" }, enabled, h("span", {}, "enabled")),
      ),
      h("button", { type: "submit" }, "Save"),
      " ",
      h("button", { type: "button", class: "secondary", onclick: () => mount(status) }, "Cancel"),
      msg,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const body = {};
      if (type.input.value !== p.type) body.type = type.input.value;
      const url = base.input.value.trim();
      if (url !== (p.base_url ?? "")) body.base_url = url === "" ? null : url;
      const secs = timeout.input.value.trim();
      if (secs !== String(p.timeout ?? "")) body.timeout = secs === "" ? null : Number(secs);
      if (key.input.value !== "") body.api_key = key.input.value;
      if (enabled.checked !== Boolean(p.enabled)) body.enabled = enabled.checked;
      busy(form.querySelector("button[type=submit]"), msg, async () => {
        if (Object.keys(body).length === 0) {
          mount(msg, notice("info", "Nothing changed."));
          return;
        }
        await patch(`/providers/${encodeURIComponent(p.name)}`, body);
        await load();
        const what = Object.keys(body).join(", ");
        mount(status, notice("ok", `Provider "${p.name}" saved (${what}).`));
      }, form);
    });
    return form;
  }

  await load();
}
