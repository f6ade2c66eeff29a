// Providers: list (YAML ones read-only), add one stored in the database, test one with a
// single small real call. The API never returns a provider's key, only a hint of it.

import { get, post } from "../api.js";
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
      mount(status, notice("ok", `Provider "${made.name}" added.`));
      await load();
    });
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
  await load();
}
