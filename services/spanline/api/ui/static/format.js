// Small DOM and formatting helpers shared by the pages. Elements are built with textContent, never
// from HTML strings, so nothing a run carries can inject markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child) node.append(child);
  return node;
}

export function formatDuration(ms, { short = false } = {}) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (short && ms >= 60_000) return ms >= 3_600_000 ? `${(ms / 3_600_000).toFixed(1)} h` : `${(ms / 60_000).toFixed(1)} min`;
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatCost(usd) {
  if (usd === null || usd === undefined) return "–";
  if (usd === 0) return "$0";
  return usd < 0.01 ? `$${usd.toPrecision(3)}` : `$${usd.toFixed(4)}`;
}

export function formatCount(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

// API times are UTC (some with "Z", some without an offset): shown as "YYYY-MM-DD HH:MM:SS.mmm UTC".
export function formatTime(iso, { date = true } = {}) {
  if (!iso) return "–";
  const utc = /(Z|[+-]\d\d:?\d\d)$/.test(iso) ? iso : `${iso}Z`;
  const text = new Date(Date.parse(utc)).toISOString().replace("T", " ").replace("Z", "");
  return date ? `${text} UTC` : text.slice(11);
}

// RFC 3339 with microseconds → µs since the epoch (Date keeps only milliseconds).
export function isoToMicros(iso) {
  const ms = Date.parse(iso);
  const fraction = /\.(\d+)/.exec(iso);
  const micros = fraction ? Number((fraction[1] + "000000").slice(3, 6)) : 0;
  return ms * 1000 + micros;
}

export function spanDurationMs(startIso, endIso) {
  if (!startIso || !endIso) return null;
  return (isoToMicros(endIso) - isoToMicros(startIso)) / 1000;
}

export const TERMINAL = new Set(["FULFILLED", "REJECTED"]);

export function statusBadge(status) {
  return h("span", { class: `status status-${String(status).toLowerCase()}` }, status);
}

export function pretty(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}
