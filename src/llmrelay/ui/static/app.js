// The page's entry: hash routes (#/keys, #/teams, #/requests/<id>, ...) to page modules,
// with an optional query (#/requests?model=x&status=5xx) that a page reads as its state,
// so a filtered view survives a reload and can be shared; without a token every route
// shows the login page.

import { clearToken, token } from "./api.js";
import { h, mount } from "./dom.js";
import { loginPage } from "./pages/login.js";
import { keysPage } from "./pages/keys.js";
import { teamsPage } from "./pages/teams.js";
import { providersPage } from "./pages/providers.js";
import { usagePage } from "./pages/usage.js";
import { requestsPage } from "./pages/requests.js";
import { budgetsPage } from "./pages/budgets.js";

const PAGES = {
  keys: keysPage,
  teams: teamsPage,
  providers: providersPage,
  usage: usagePage,
  requests: requestsPage,
  budgets: budgetsPage,
};

const main = document.getElementById("main");
const nav = document.getElementById("nav");

function route() {
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?", 2);
  const [name, ...rest] = path.split("/");
  if (!token()) {
    nav.hidden = true;
    document.title = "llmrelay admin: log in";
    mount(main, loginPage(() => go("keys")));
    return;
  }
  nav.hidden = false;
  const page = PAGES[name];
  if (!page) {
    go("keys");
    return;
  }
  for (const a of nav.querySelectorAll("a")) {
    a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  }
  document.title = `llmrelay admin: ${name}`;
  const section = h("section", { id: `page-${name}` });
  mount(main, section);
  page(section, rest.map(decodeURIComponent), new URLSearchParams(search));
}

export function go(name) {
  if (location.hash === `#/${name}`) route();
  else location.hash = `#/${name}`;
}

document.getElementById("logout").addEventListener("click", () => {
  clearToken();
  route();
});
window.addEventListener("hashchange", route);
route();
