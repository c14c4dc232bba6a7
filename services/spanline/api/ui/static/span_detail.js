// Span payloads from the detail API, a page at a time: the page holding a span is fetched with the
// keyset cursor the skeleton gives (the span before the page), so any page costs one request however
// deep. Pages are cached (bounded); a live run's pages are re-read as their spans change.
import { formatCost, formatCount, formatDuration, formatTime, h, pretty, statusBadge } from "./format.js";
import { api } from "./session.js";

export const PAGE_SIZE = 100;
const MAX_PAGES = 30;

export class SpanPages {
  constructor(executionId, model, signal) {
    this.executionId = executionId;
    this.model = model;
    this.signal = signal;
    this.pages = new Map(); // page number → {loading: Promise, spans: Map<span_id, detail span> | null}
  }

  // A page already read elsewhere (the first page, fetched before the skeleton).
  seed(page, detail) {
    const spans = new Map(detail.spans.map((item) => [item.span_id, item]));
    this.pages.set(page, { loading: Promise.resolve(spans), spans });
  }

  invalidate(span) {
    this.pages.delete(this.model.pageOf(span, PAGE_SIZE).page);
  }

  load(span) {
    const { page, cursor } = this.model.pageOf(span, PAGE_SIZE);
    let entry = this.pages.get(page);
    if (!entry) {
      const query = new URLSearchParams({ span_limit: String(PAGE_SIZE) });
      if (cursor) query.set("prev_span_id", cursor);
      entry = { loading: null, spans: null };
      entry.loading = api(`/v1/workflow-executions/${this.executionId}/detail?${query}`, { signal: this.signal }).then(
        (detail) => {
          entry.spans = new Map(detail.spans.map((item) => [item.span_id, item]));
          return entry.spans;
        },
      );
      entry.loading.catch(() => this.pages.get(page) === entry && this.pages.delete(page));
      this.pages.set(page, entry);
      if (this.pages.size > MAX_PAGES) this.pages.delete(this.pages.keys().next().value);
    }
    return entry.loading;
  }

  async spanDetail(span) {
    return (await this.load(span)).get(span.id) ?? null;
  }

  // Tokens of a span whose page is loaded (undefined while it is not).
  tokens(span) {
    const entry = this.pages.get(this.model.pageOf(span, PAGE_SIZE).page);
    const detail = entry?.spans?.get(span.id);
    if (!detail) return undefined;
    let total = 0;
    for (const usage of detail.usage_result?.usage ?? []) {
      total += (usage.ml_model_usage?.input_token_count ?? 0) + (usage.ml_model_usage?.output_token_count ?? 0);
    }
    return total;
  }

  // The pages holding the spans in view (a few at most: the view asks again as it moves); resolves with
  // how many of them were not loaded yet, so the caller repaints when that is not 0.
  async prefetch(spans) {
    const wanted = new Map();
    for (const span of spans) {
      const { page } = this.model.pageOf(span, PAGE_SIZE);
      if (!this.pages.get(page)?.spans && !wanted.has(page)) wanted.set(page, span);
      if (wanted.size >= 3) break;
    }
    await Promise.all([...wanted.values()].map((span) => this.load(span).catch(() => null)));
    return wanted.size;
  }
}

function section(title, ...content) {
  return h("section", { class: "detail-section" }, h("h3", {}, title), ...content);
}

function usageTable(usageResult) {
  if (!usageResult) return h("p", { class: "muted" }, "No model usage.");
  const costs = usageResult.cost ?? [];
  return h(
    "table",
    { class: "compact usage", "aria-label": "Model calls of this span" },
    h(
      "thead",
      {},
      h("tr", {}, ["Model", "In", "Out", "Latency", "Cost"].map((t) => h("th", { scope: "col" }, t))),
    ),
    h(
      "tbody",
      {},
      (usageResult.usage ?? []).map((entry, index) => {
        const usage = entry.ml_model_usage ?? {};
        return h(
          "tr",
          {},
          h("td", {}, entry.ml_model_name),
          h("td", { class: "num" }, formatCount(usage.input_token_count ?? 0)),
          h("td", { class: "num" }, formatCount(usage.output_token_count ?? 0)),
          h("td", { class: "num" }, usage.compute_nanos ? formatDuration(usage.compute_nanos / 1e6) : "–"),
          h("td", { class: "num" }, formatCost(costs[index]?.value)),
        );
      }),
    ),
  );
}

function eventList(events) {
  return h(
    "ol",
    { class: "events" },
    events.map((event) =>
      h(
        "li",
        {},
        h("span", { class: "mono small" }, formatTime(event.timestamp, { date: false })),
        " ",
        h("strong", {}, event.name),
        event.name.endsWith(".log") ? ` ${event.body.severity ?? ""}: ${event.body.message ?? ""}` : "",
      ),
    ),
  );
}

// The panel of one span: timing from the skeleton at once, payloads when its page arrives.
export function renderSpanDetail(panel, span, detail, { loading }) {
  const micros = (value) => (value === null ? null : new Date(value / 1000).toISOString());
  const duration = span.end === null ? null : (span.end - span.start) / 1000;
  const parts = [
    h("h2", { id: "span-detail-title" }, span.label, " ", statusBadge(span.status)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Kind"),
      h("dd", {}, span.kind),
      h("dt", {}, "Span id"),
      h("dd", { class: "mono small" }, span.id),
      h("dt", {}, "Parent"),
      h("dd", { class: "mono small" }, span.parentId ?? "–"),
      h("dt", {}, "Start"),
      h("dd", {}, formatTime(micros(span.start))),
      h("dt", {}, "End"),
      h("dd", {}, span.end === null ? "running" : formatTime(micros(span.end))),
      h("dt", {}, "Duration"),
      h("dd", {}, duration === null ? "running" : formatDuration(duration)),
    ),
  ];
  if (loading) parts.push(h("p", { class: "muted", role: "status" }, "Loading payloads…"));
  else if (!detail) parts.push(h("p", { class: "muted" }, "No payloads stored for this span yet."));
  else {
    const events = detail.events ?? [];
    const initiated = events.find((e) => e.name.endsWith(".initiated"));
    const fulfilled = events.find((e) => e.name.endsWith(".fulfilled"));
    const rejected = events.find((e) => e.name.endsWith(".rejected"));
    if (rejected) {
      const error = rejected.body.error ?? {};
      parts.push(
        section("Error", h("p", { class: "error", role: "alert" }, `${error.code ?? ""}: ${error.message ?? ""}`)),
      );
    }
    parts.push(section("Inputs", initiated ? pretty(initiated.body.inputs ?? {}) : h("p", { class: "muted" }, "–")));
    parts.push(section("Outputs", fulfilled ? pretty(fulfilled.body.outputs ?? {}) : h("p", { class: "muted" }, "–")));
    parts.push(section("Usage", usageTable(detail.usage_result)));
    parts.push(section(`Events (${events.length})`, eventList(events)));
  }
  panel.replaceChildren(...parts);
}
