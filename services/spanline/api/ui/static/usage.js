// Usage: cost, tokens, calls and latency p50/p95 over time, by model, provider or workflow, from
// POST /v1/usage/query; uPlot (vendored, loaded on first use) draws the charts, the table repeats them.
import { formatCost, formatCount, formatDuration, h } from "./format.js";
import { api } from "./session.js";

const GRANULARITIES = ["minute", "hour", "day", "week", "month"];
const GROUPS = { model: "Model", provider: "Provider", workflow_name: "Workflow" };
const RANGES = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const MEASURES = ["cost_usd", "total_tokens", "calls", "latency_p50", "latency_p95"];
const COLORS = ["#2456c9", "#d2691e", "#1c7c43", "#8a3ffc", "#b3261e", "#00838f", "#6d4c41", "#c2185b"];
const CHARTS = [
  { id: "cost", title: "Cost (USD)", measures: ["cost_usd"], format: (v) => formatCost(v) },
  { id: "tokens", title: "Tokens (input + output)", measures: ["total_tokens"], format: (v) => formatCount(v) },
  { id: "calls", title: "Model calls", measures: ["calls"], format: (v) => formatCount(v) },
  {
    id: "latency",
    title: "Latency p50 / p95 (ms)",
    measures: ["latency_p50", "latency_p95"],
    format: (v) => (v === null || v === undefined ? "–" : formatDuration(v)),
  },
];

let uplotLoading = null;
function loadUplot() {
  uplotLoading ??= new Promise((resolve, reject) => {
    const css = h("link", { rel: "stylesheet", href: "/ui/static/vendor/uPlot.min.css" });
    const script = h("script", { src: "/ui/static/vendor/uPlot.iife.min.js" });
    script.addEventListener("load", () => resolve(window.uPlot));
    script.addEventListener("error", () => reject(new Error("could not load the chart library")));
    document.head.append(css, script);
  });
  return uplotLoading;
}

// A datetime-local value (minutes, maybe seconds) read as UTC.
function utc(value) {
  return value.length === 16 ? `${value}:00Z` : `${value}Z`;
}

function toLocalInput(ms) {
  return new Date(ms).toISOString().slice(0, 16);
}

function readState() {
  const query = new URLSearchParams(location.search);
  const range = query.get("range") ?? (query.get("from") ? "custom" : "24h");
  const to = query.get("to") ?? toLocalInput(Math.ceil(Date.now() / 60e3) * 60e3);
  const from = query.get("from") ?? toLocalInput(Date.parse(`${to}Z`) - (RANGES[range] ?? RANGES["24h"]));
  const granularity = query.get("granularity") ?? (range === "1h" ? "minute" : range === "24h" ? "hour" : "day");
  return { range, from, to, granularity, group: query.get("group") ?? "model" };
}

function controls(state, onApply) {
  const select = (name, label, options, value) =>
    h(
      "div",
      { class: "field" },
      h("label", { for: `usage-${name}` }, label),
      h(
        "select",
        { id: `usage-${name}`, name },
        Object.entries(options).map(([key, text]) => h("option", { value: key, selected: key === value }, text)),
      ),
    );
  const time = (name, label) =>
    h(
      "div",
      { class: "field" },
      h("label", { for: `usage-${name}` }, label),
      h("input", { id: `usage-${name}`, name, type: "datetime-local", value: state[name] }),
    );
  const form = h(
    "form",
    { class: "filters", "aria-label": "Usage query" },
    select("range", "Time range", { "1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", custom: "Custom" }, state.range),
    time("from", "From (UTC)"),
    time("to", "To (UTC)"),
    select("granularity", "Granularity", Object.fromEntries(GRANULARITIES.map((g) => [g, g])), state.granularity),
    select("group", "Group by", GROUPS, state.group),
    h("button", { type: "submit" }, "Apply"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const next = { granularity: data.granularity, group: data.group };
    if (data.range === "custom") Object.assign(next, { from: data.from, to: data.to });
    else next.range = data.range;
    onApply(next);
  });
  return form;
}

// Rows (bucket × group) → one x axis (the buckets) and, per group, one array of values per measure.
function pivot(rows, group) {
  const buckets = [...new Set(rows.map((row) => row.bucket))].sort();
  const groups = [...new Set(rows.map((row) => row[group] ?? "(none)"))].sort();
  const at = new Map(buckets.map((bucket, index) => [bucket, index]));
  const series = new Map(
    groups.map((name) => [name, Object.fromEntries(MEASURES.map((m) => [m, buckets.map(() => null)]))]),
  );
  for (const row of rows) {
    const values = series.get(row[group] ?? "(none)");
    for (const measure of MEASURES) values[measure][at.get(row.bucket)] = row[measure];
  }
  return { xs: buckets.map((bucket) => Date.parse(bucket) / 1000), buckets, groups, series };
}

function drawChart(uPlot, slot, chart, data, width, span) {
  const series = [{ label: "Time (UTC)", value: (_u, v) => (v === null ? "–" : new Date(v * 1000).toISOString().slice(0, 16).replace("T", " ")) }];
  const columns = [data.xs];
  data.groups.forEach((name, index) => {
    for (const measure of chart.measures) {
      series.push({
        label: chart.measures.length > 1 ? `${name} ${measure.replace("latency_", "")}` : name,
        stroke: COLORS[index % COLORS.length],
        width: 2,
        dash: measure === "latency_p95" ? [6, 4] : undefined,
        points: { show: true, size: 5 },
        spanGaps: true,
        value: (_u, v) => chart.format(v),
      });
      columns.push(data.series.get(name)[measure]);
    }
  });
  const plot = new uPlot(
    {
      width,
      height: 140,
      series,
      // The x axis spans the whole query range, so a lone bucket sits where it belongs.
      scales: { x: { time: true, range: () => span } },
      axes: [{}, { size: 78, values: (_u, ticks) => ticks.map((v) => chart.format(v)) }],
      legend: { live: true },
      tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC"),
    },
    columns,
    slot,
  );
  slot.uplot = plot; // for tests and the curious: the instance behind what is drawn
  return plot;
}

function table(rows, group) {
  const cells = (row) => [
    h("td", {}, row.bucket.slice(0, 16).replace("T", " ")),
    h("td", {}, row[group] ?? "(none)"),
    h("td", { class: "num" }, formatCost(row.cost_usd)),
    h("td", { class: "num" }, formatCount(row.total_tokens)),
    h("td", { class: "num" }, formatCount(row.calls)),
    h("td", { class: "num" }, row.latency_p50 === null ? "–" : formatDuration(row.latency_p50)),
    h("td", { class: "num" }, row.latency_p95 === null ? "–" : formatDuration(row.latency_p95)),
  ];
  return h(
    "table",
    { id: "usage-table", "aria-label": "Usage by time and group" },
    h(
      "thead",
      {},
      h("tr", {}, ["Bucket (UTC)", GROUPS[group], "Cost", "Tokens", "Calls", "p50", "p95"].map((t) => h("th", { scope: "col" }, t))),
    ),
    h(
      "tbody",
      {},
      rows.map((row) => h("tr", { dataset: { bucket: row.bucket, group: row[group] ?? "" } }, cells(row))),
    ),
  );
}

export function usagePage(main, _params, { signal, navigate }) {
  const state = readState();
  const status = h("p", { class: "muted", role: "status", id: "usage-status" }, "Loading usage…");
  const charts = h("div", { class: "charts", id: "usage-charts" });
  const tableSlot = h("div", { class: "usage-table" });
  main.replaceChildren(
    h("h1", {}, "Usage"),
    controls(state, (next) => navigate(`/ui/usage?${new URLSearchParams(next)}`)),
    status,
    charts,
    tableSlot,
  );
  const plots = [];
  (async () => {
    const query = {
      from: utc(state.from),
      to: utc(state.to),
      dimensions: [state.group],
      measures: MEASURES,
      granularity: state.granularity,
      limit: 10000,
    };
    const [uPlot, answer] = await Promise.all([loadUplot(), api("/v1/usage/query", { method: "POST", body: query, signal })]);
    if (signal.aborted) return;
    const rows = answer.rows;
    status.textContent = rows.length
      ? `${rows.length} rows from ${query.from} to ${query.to}${answer.truncated ? " (truncated)" : ""}`
      : `No model calls from ${query.from} to ${query.to}.`;
    if (!rows.length) return;
    const data = pivot(rows, state.group);
    const width = Math.max(300, Math.floor((charts.clientWidth - 10) / 2) - 14);
    for (const chart of CHARTS) {
      const slot = h("div", { class: "chart-plot", id: `chart-${chart.id}` });
      charts.append(h("figure", { class: "chart" }, h("h2", {}, chart.title), slot));
      plots.push(drawChart(uPlot, slot, chart, data, width, [Date.parse(query.from) / 1000, Date.parse(query.to) / 1000]));
    }
    tableSlot.replaceChildren(table(rows, state.group));
  })().catch((error) => {
    if (!signal.aborted) status.textContent = `Could not load usage: ${error.message}`;
  });
  return () => plots.forEach((plot) => plot.destroy());
}
