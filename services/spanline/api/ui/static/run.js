// One run: header, the span tree with its timeline (virtualized), the selected span's payloads, and,
// while the run runs, its live events applied in place.
import { formatCost, formatCount, formatDuration, formatTime, h, isoToMicros, statusBadge, TERMINAL } from "./format.js";
import { api, ApiError } from "./session.js";
import { followEvents } from "./sse.js";
import { PAGE_SIZE, SpanPages, renderSpanDetail } from "./span_detail.js";
import { SpanModel } from "./span_model.js";
import { SpanView } from "./span_view.js";

const REFRESH_SPANS_MAX = 20_000; // re-read the skeleton's totals at the end only for runs this small

function header(run) {
  const duration =
    run.start && run.end ? (isoToMicros(run.end) - isoToMicros(run.start)) / 1000 : null;
  const models = run.usage_by_model ?? [];
  const parts = [
    h(
      "div",
      { class: "run-title" },
      h("h1", {}, run.workflow_name || "Run"),
      h("span", { id: "run-status", class: `status status-${run.status.toLowerCase()}`, role: "status" }, run.status),
    ),
    h(
      "dl",
      { class: "facts inline" },
      h("dt", {}, "Execution"),
      h("dd", { class: "mono small" }, run.execution_id),
      h("dt", {}, "Started"),
      h("dd", {}, formatTime(run.start)),
      h("dt", {}, "Duration"),
      h("dd", { id: "run-duration" }, duration === null ? (run.start ? "running" : "–") : formatDuration(duration)),
      h("dt", {}, "Spans"),
      h("dd", { id: "run-span-count" }, run.span_count === null ? "…" : formatCount(run.span_count)),
      run.external_id ? [h("dt", {}, "External id"), h("dd", { class: "mono" }, run.external_id)] : null,
    ),
  ];
  if (models.length) {
    parts.push(
      h(
        "table",
        { class: "compact models", "aria-label": "Tokens and cost by model" },
        h(
          "thead",
          {},
          h("tr", {}, ["Model", "Input tokens", "Output tokens", "Cost"].map((t) => h("th", { scope: "col" }, t))),
        ),
        h(
          "tbody",
          {},
          models.map((m) =>
            h(
              "tr",
              {},
              h("td", {}, m.provider ? `${m.model} (${m.provider})` : m.model),
              h("td", { class: "num" }, formatCount(m.input_tokens)),
              h("td", { class: "num" }, formatCount(m.output_tokens)),
              h("td", { class: "num" }, formatCost(m.cost_usd)),
            ),
          ),
        ),
      ),
    );
  }
  if (run.error) {
    parts.push(
      h(
        "div",
        { class: "run-error", role: "alert", id: "run-error" },
        h("strong", {}, run.error.code ?? "ERROR"),
        ": ",
        run.error.message ?? JSON.stringify(run.error),
      ),
    );
  }
  return parts;
}

export function runPage(main, [executionId], { signal }) {
  const headerSlot = h("header", { class: "run-header", id: "run-header" });
  const liveNote = h("p", { class: "muted", role: "status", id: "live-note" });
  const treeSlot = h("div", { class: "tree-slot" });
  const panel = h(
    "aside",
    { class: "span-detail", id: "span-detail", "aria-live": "polite", "aria-labelledby": "span-detail-title" },
    h("p", { class: "muted" }, "Select a span to see its inputs, outputs, events and usage."),
  );
  main.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "/ui/executions" }, "← Runs")),
    headerSlot,
    liveNote,
    h("div", { class: "run-body" }, treeSlot, panel),
  );
  headerSlot.replaceChildren(h("p", { class: "muted" }, "Loading run…"));

  let run = null;
  let model = new SpanModel(executionId);
  let view = null;
  let pages = null;
  let live = false;
  let finished = false;
  let selectedId = new URLSearchParams(location.search).get("span");
  let detailTimer = null;
  let windowTimer = null;
  let ticker = null;

  function now() {
    return live && !finished ? Date.now() * 1000 : null;
  }

  // The view is built once; a new model (the skeleton after the first page) is swapped into it, so
  // the tree keeps its element, focus and scroll position.
  function mount() {
    pages = new SpanPages(executionId, model, signal);
    if (view) {
      view.model = model;
      view.followTail = live;
      view.refresh();
      return;
    }
    view = new SpanView(model, {
      now,
      tokens: (span) => pages.tokens(span),
      onSelect: (span) => showSpan(span),
      onWindow: (spans) => {
        clearTimeout(windowTimer);
        windowTimer = setTimeout(() => {
          pages.prefetch(spans).then((loaded) => loaded && view.schedule());
        }, 120);
      },
    });
    treeSlot.replaceChildren(view.root);
    view.followTail = live;
    view.refresh();
  }

  function showSpan(span) {
    selectedId = span.id;
    const url = new URL(location.href);
    url.searchParams.set("span", span.id);
    history.replaceState(null, "", url);
    renderSpanDetail(panel, span, null, { loading: true });
    clearTimeout(detailTimer);
    detailTimer = setTimeout(async () => {
      try {
        const detail = await pages.spanDetail(span);
        if (selectedId === span.id) renderSpanDetail(panel, span, detail, { loading: false });
      } catch (error) {
        if (!signal.aborted && selectedId === span.id) panel.append(h("p", { class: "error" }, error.message));
      }
    }, 80);
  }

  function setRun(next) {
    run = next;
    headerSlot.replaceChildren(...header(run));
  }

  async function loadSkeleton() {
    const skeleton = await api(`/v1/workflow-executions/${executionId}/span-skeleton`, { signal });
    return skeleton;
  }

  // Many event chunks can arrive in one frame: rebuild and paint the rows once per frame.
  let refreshPending = false;
  function scheduleRefresh() {
    if (refreshPending) return;
    refreshPending = true;
    requestAnimationFrame(() => {
      refreshPending = false;
      view.refresh({ now: true });
    });
  }

  function applyEvents(messages) {
    let rootChanged = false;
    for (const message of messages) {
      const event = message.data;
      const span = model.apply(event);
      pages?.invalidate(span);
      if (event.span_id === executionId) {
        rootChanged = true;
        if (!run) {
          run = {
            execution_id: executionId,
            workflow_name: event.body.workflow_definition?.name ?? "",
            status: "INITIATED",
            start: null,
            end: null,
            span_count: 0,
            usage_by_model: [],
            error: null,
          };
        }
        if (event.name.endsWith(".initiated")) run.start = run.start ?? event.timestamp;
        if (event.name.endsWith(".fulfilled")) Object.assign(run, { status: "FULFILLED", end: event.timestamp });
        if (event.name.endsWith(".rejected"))
          Object.assign(run, { status: "REJECTED", end: event.timestamp, error: event.body.error ?? null });
        if (event.name.endsWith(".streaming") && !TERMINAL.has(run.status)) run.status = "STREAMING";
      }
    }
    if (!view) mount();
    if (run) {
      run.span_count = model.spans.length;
      if (rootChanged) setRun(run);
      else document.getElementById("run-span-count").textContent = formatCount(run.span_count);
    }
    scheduleRefresh();
    if (selectedId && messages.some((m) => m.data.span_id === selectedId)) {
      const span = model.byId.get(selectedId);
      if (span) showSpan(span);
    }
  }

  function followLive() {
    live = true;
    if (view) view.followTail = true;
    liveNote.textContent = "Live: following this run's events.";
    ticker = setInterval(() => view?.schedule(), 500); // running bars grow with the clock
    followEvents(`/v1/workflow-executions/${executionId}/events`, {
      signal,
      isDone: () => run !== null && TERMINAL.has(run.status),
      onEvents: applyEvents,
      onError: (error) => {
        liveNote.textContent = "";
        if (error.status === 404) notFound();
        else liveNote.textContent = `Live events stopped: ${error.message}`;
      },
      onEnd: async () => {
        finished = true;
        clearInterval(ticker);
        liveNote.textContent = `The run ended: ${run?.status ?? ""}.`;
        view?.refresh();
        if (model.spans.length <= REFRESH_SPANS_MAX) refreshTotals();
      },
    });
  }

  // The stored totals (tokens, cost) lag the live events by the consumer's batch: re-read a few times.
  async function refreshTotals() {
    for (let attempt = 0; attempt < 10 && !signal.aborted; attempt += 1) {
      try {
        const skeleton = await loadSkeleton();
        if (TERMINAL.has(skeleton.status)) {
          const { spans, columns, origin_us, ...rest } = skeleton;
          setRun({ ...rest, span_count: Math.max(rest.span_count, model.spans.length) });
          return;
        }
      } catch {
        // not stored yet
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  function notFound() {
    view?.destroy();
    view = null;
    headerSlot.replaceChildren(
      h("h1", {}, "Run not found"),
      h("p", { role: "alert" }, `No run ${executionId} in your organization.`),
    );
    treeSlot.replaceChildren();
    panel.replaceChildren();
  }

  // A big run's skeleton takes a while: the first page of the detail API is painted meanwhile.
  const firstPage = api(`/v1/workflow-executions/${executionId}/detail?span_limit=${PAGE_SIZE}`, { signal }).catch(
    () => null,
  );
  let skeletonArrived = false;
  firstPage.then((detail) => {
    if (!detail || skeletonArrived || signal.aborted) return;
    model = SpanModel.fromDetailPage(executionId, detail);
    const root = model.byId.get(executionId);
    setRun({
      execution_id: executionId,
      workflow_name: root?.label ?? "",
      status: root?.status ?? "INITIATED",
      start: detail.start,
      end: detail.end,
      error: detail.error,
      span_count: null,
      usage_by_model: [],
    });
    liveNote.textContent = "Loading the whole run…";
    mount();
  });

  (async () => {
    let skeleton = null;
    try {
      skeleton = await loadSkeleton();
    } catch (error) {
      if (signal.aborted) return;
      if (!(error instanceof ApiError) || error.status !== 404) {
        headerSlot.replaceChildren(h("p", { class: "error", role: "alert" }, `Could not load the run: ${error.message}`));
        return;
      }
    }
    skeletonArrived = true;
    if (skeleton) {
      model = SpanModel.fromSkeleton(executionId, skeleton);
      const { spans, columns, origin_us, ...rest } = skeleton;
      setRun(rest);
      liveNote.textContent = "";
      mount();
      const seeded = pages;
      firstPage.then((first) => first && seeded === pages && !pages.pages.has(0) && pages.seed(0, first));
      if (selectedId && model.byId.has(selectedId)) view.select(selectedId, { reveal: true });
      if (!TERMINAL.has(skeleton.status)) followLive();
    } else {
      // Not stored (yet): the events stream waits for a run that has not started; another
      // organization's id is indistinguishable from that (docs/read_api.md, Tenancy).
      view?.destroy();
      view = null;
      model = new SpanModel(executionId);
      treeSlot.replaceChildren();
      headerSlot.replaceChildren(h("h1", {}, "Waiting for the run to start…"));
      followLive();
    }
  })();

  return () => {
    clearTimeout(detailTimer);
    clearTimeout(windowTimer);
    clearInterval(ticker);
    view?.destroy();
  };
}

export { PAGE_SIZE };
