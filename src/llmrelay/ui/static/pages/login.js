// Log in: the admin token (master key or an admin token) is checked by one real API call
// before it is kept, so a wrong token shows the API's own refusal.

import { call, setToken } from "../api.js";
import { h, mount, notice } from "../dom.js";

export function loginPage(done) {
  const status = h("div", { id: "login-status" });
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    placeholder: "master key or admin token",
  });
  const button = h("button", { type: "submit" }, "Log in");
  const form = h(
    "form",
    { id: "login", class: "card narrow" },
    h("h1", {}, "Log in"),
    h("label", { for: "token" }, h("span", {}, "Admin token"), input),
    button,
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    button.disabled = true;
    mount(status);
    try {
      await call("GET", "/virtual-keys?limit=1", undefined, value);
      setToken(value);
      done();
    } catch (err) {
      mount(status, notice("error", err.message));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
