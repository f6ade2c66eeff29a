// A bar chart drawn as inline SVG: one bar per [label, value], labels and values as text
// nodes (never markup), scaled to the largest value.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** bars: [[label, value], ...]; format: value -> text shown above the bar. */
export function barChart(bars, { title, format = String, id } = {}) {
  const width = Math.max(320, 70 * bars.length + 60);
  const height = 220;
  const top = 24;
  const bottom = 40;
  const left = 40;
  const plot = height - top - bottom;
  const max = Math.max(0, ...bars.map(([, v]) => Number(v) || 0)) || 1;
  const root = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    ...(id ? { id } : {}),
  });
  if (title) root.appendChild(svg("title", {}, title));
  root.appendChild(svg("line", { x1: left, y1: top + plot, x2: width - 10, y2: top + plot, class: "axis" }));
  const step = (width - left - 10) / Math.max(1, bars.length);
  bars.forEach(([label, value], i) => {
    const v = Number(value) || 0;
    const h = Math.round((v / max) * plot);
    const x = left + i * step + step * 0.15;
    const w = step * 0.7;
    const g = svg("g", { class: "bar" });
    g.appendChild(svg("rect", { x, y: top + plot - h, width: w, height: Math.max(h, 1) }));
    g.appendChild(svg("text", { x: x + w / 2, y: top + plot - h - 6, class: "value" }, format(v)));
    const short = String(label).length > 12 ? `${String(label).slice(0, 11)}…` : String(label);
    g.appendChild(svg("text", { x: x + w / 2, y: top + plot + 16, class: "label" }, short));
    g.appendChild(svg("title", {}, `${label}: ${format(v)}`));
    root.appendChild(g);
  });
  return root;
}
