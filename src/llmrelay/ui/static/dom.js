// Building the page: every piece of data goes in as a text node or an attribute value,
// never through innerHTML, so a key named <img src=x onerror=alert(1)> stays text.

/** h("td", {class: "x", onclick: fn}, "text", child, ...) -> a new element. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace el's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A message box (kind: "error" | "ok" | "info") whose text is set, never parsed. */
export function notice(kind, text) {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/** A labelled input; returns the label (the input is its .input). */
export function field(label, name, attrs) {
  const input = h("input", { name, id: `f-${name}`, ...(attrs ?? {}) });
  const el = h("label", { for: `f-${name}` }, h("span", {}, label), input);
  el.input = input;
  return el;
}

/** A labelled select of [value, text] pairs. */
export function select(label, name, options, attrs) {
  const input = h(
    "select",
    { name, id: `f-${name}`, ...(attrs ?? {}) },
    options.map(([value, text]) => h("option", { value }, text)),
  );
  const el = h("label", { for: `f-${name}` }, h("span", {}, label), input);
  el.input = input;
  return el;
}

/** A table: columns are [heading, row => cell content]. */
export function table(columns, rows, attrs) {
  return h(
    "table",
    attrs ?? {},
    h("thead", {}, h("tr", {}, columns.map(([heading]) => h("th", {}, heading)))),
    h(
      "tbody",
      {},
      rows.length === 0
        ? h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "Nothing yet."))
        : rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row))))),
    ),
  );
}

/** The form's values: "" becomes undefined, number inputs become numbers. */
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    const raw = el.value.trim();
    if (raw === "") continue;
    out[el.name] = el.type === "number" ? Number(raw) : raw;
  }
  return out;
}

/** "—" for a missing value, the value as text otherwise. */
export function show(v) {
  return v === undefined || v === null || v === "" ? "—" : String(v);
}

export function money(v) {
  if (v === undefined || v === null || v === "") return "—";
  const n = Number(v);
  return Number.isFinite(n) ? `$${n.toFixed(n !== 0 && Math.abs(n) < 0.01 ? 6 : 2)}` : String(v);
}

/** Run an async action with its button disabled; errors land in the status element,
 * and when the API names the field it refused (error.param) and form has an input of
 * that name, the input is marked invalid and focused. */
export async function busy(button, status, action, form) {
  button.disabled = true;
  for (const el of form?.querySelectorAll("[aria-invalid]") ?? []) el.removeAttribute("aria-invalid");
  try {
    await action();
  } catch (err) {
    mount(status, notice("error", err.message));
    const named = err.param && form?.elements.namedItem(err.param);
    if (named instanceof HTMLElement) {
      named.setAttribute("aria-invalid", "true");
      named.focus();
    }
  } finally {
    button.disabled = false;
  }
}
