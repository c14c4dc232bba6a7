// Runs: newest first, keyset pages ("Load more" follows next_cursor), filters in the query string, and
// new runs appearing without reload (the first page is re-read every few seconds).
import { formatCost, formatCount, formatDuration, formatTime, h, spanDurationMs, statusBadge } from "./format.js";
import { api } from "./session.js";

const PAGE = 50;
const REFRESH_MS = 2000;
const STATUSES = ["", "INITIATED", "STREAMING", "FULFILLED", "REJECTED", "PAUSED"];
const FILTERS = ["workflow_id", "status", "started_from", "started_to", "external_id"];

function listUrl(filters, cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const name of FILTERS) if (filters[name]) query.set(name, filters[name]);
  if (cursor) query.set("cursor", cursor);
  return `/v1/workflow-executions?${query}`;
}

function runRow(run) {
  const duration = spanDurationMs(run.start, run.end);
  return h(
    "tr",
    { dataset: { executionId: run.execution_id } },
    h("td", {}, formatTime(run.start)),
    h("td", {}, h("a", { href: `/ui/executions/${run.execution_id}` }, run.workflow_name || run.workflow_id)),
    h("td", {}, statusBadge(run.status)),
    h("td", { class: "num" }, run.end ? formatDuration(duration) : "running"),
    h("td", { class: "num" }, formatCount(run.span_count)),
    h("td", { class: "num" }, formatCount(run.input_tokens + run.output_tokens)),
    h("td", { class: "num" }, formatCost(run.cost_usd)),
    h("td", { class: "mono" }, run.external_id ?? ""),
    h("td", { class: "mono small" }, run.execution_id),
  );
}

function filterForm(filters, workflows, onApply) {
  const field = (name, label, control) =>
    h("div", { class: "field" }, h("label", { for: `filter-${name}` }, label), control);
  const workflowSelect = h(
    "select",
    { id: "filter-workflow_id", name: "workflow_id" },
    h("option", { value: "" }, "any"),
    workflows.map((w) => h("option", { value: w.name, selected: filters.workflow_id === w.name }, w.name)),
  );
  const statusSelect = h(
    "select",
    { id: "filter-status", name: "status" },
    STATUSES.map((s) => h("option", { value: s, selected: filters.status === s }, s || "any")),
  );
  const timeInput = (name) =>
    h("input", { id: `filter-${name}`, name, type: "datetime-local", step: "1", value: filters[name] ?? "" });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter runs" },
    field("workflow_id", "Workflow", workflowSelect),
    field("status", "Status", statusSelect),
    field("started_from", "Started from (UTC)", timeInput("started_from")),
    field("started_to", "Started before (UTC)", timeInput("started_to")),
    field(
      "external_id",
      "External id",
      h("input", { id: "filter-external_id", name: "external_id", value: filters.external_id ?? "" }),
    ),
    h("button", { type: "submit" }, "Apply"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    onApply(Object.fromEntries(FILTERS.map((name) => [name, String(data.get(name) ?? "")])));
  });
  return form;
}

export function runsPage(main, _params, { signal, navigate }) {
  const query = new URLSearchParams(location.search);
  const filters = Object.fromEntries(FILTERS.map((name) => [name, query.get(name) ?? ""]));
  const body = h("tbody", { id: "runs-body" });
  const status = h("p", { class: "muted", role: "status", id: "runs-status" }, "Loading runs…");
  const more = h("button", { type: "button", id: "load-more", hidden: true }, "Load more");
  const rows = new Map(); // execution_id → <tr>
  let cursor = null;
  const formSlot = h("div");

  main.replaceChildren(
    h("h1", {}, "Runs"),
    formSlot,
    h(
      "table",
      { class: "runs", "aria-describedby": "runs-status" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Started", "Workflow", "Status", "Duration", "Spans", "Tokens", "Cost", "External id", "Execution"].map(
            (label) => h("th", { scope: "col" }, label),
          ),
        ),
      ),
      body,
    ),
    more,
    status,
  );

  api("/api/v1/workflow/workflows", { signal })
    .catch(() => [])
    .then((workflows) => {
      formSlot.replaceChildren(
        filterForm(filters, workflows, (next) => {
          const search = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
          navigate(`/ui/executions${search.size ? `?${search}` : ""}`);
        }),
      );
    });

  function upsert(run, { atTop }) {
    const row = runRow(run);
    const existing = rows.get(run.execution_id);
    if (existing) existing.replaceWith(row);
    else if (atTop) body.prepend(row);
    else body.append(row);
    rows.set(run.execution_id, row);
  }

  async function loadPage() {
    const page = await api(listUrl(filters, cursor), { signal });
    for (const run of page.results) upsert(run, { atTop: false });
    cursor = page.next_cursor;
    more.hidden = cursor === null;
    status.textContent = rows.size ? shownText() : "No runs match.";
  }

  async function refreshFirstPage() {
    const page = await api(listUrl(filters, null), { signal });
    for (const run of [...page.results].reverse()) upsert(run, { atTop: !rows.has(run.execution_id) });
    if (rows.size) status.textContent = shownText();
  }

  function shownText() {
    return `${rows.size} run${rows.size === 1 ? "" : "s"} shown${cursor ? "" : " (all)"}`;
  }

  more.addEventListener("click", () => loadPage().catch(showError));
  function showError(error) {
    if (!signal.aborted) status.textContent = `Could not load runs: ${error.message}`;
  }
  loadPage().catch(showError);
  const timer = setInterval(() => {
    if (!document.hidden) refreshFirstPage().catch(() => {});
  }, REFRESH_MS);
  return () => clearInterval(timer);
}
