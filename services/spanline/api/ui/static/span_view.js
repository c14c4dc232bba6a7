// The span tree and its timeline as one virtualized list: only the rows in view (plus a small margin)
// are in the DOM, whatever the run's size. Keyboard: arrows move, Left/Right collapse and expand,
// Home/End and PageUp/PageDown jump, Enter opens the span.
import { formatDuration, h } from "./format.js";

export const ROW_HEIGHT = 24;
const OVERSCAN = 20;
const TICKS = 5;

export class SpanView {
  constructor(model, { onSelect, onWindow, now, tokens }) {
    this.model = model;
    this.tokens = tokens;
    this.onSelect = onSelect;
    this.onWindow = onWindow;
    this.now = now;
    this.selected = null;
    this.pending = false;
    this.followTail = false;
    this.axis = h("div", { class: "axis", "aria-hidden": "true" });
    this.spacer = h("div", { class: "tree-spacer" });
    this.window = h("div", { class: "tree-window" });
    this.scroller = h(
      "div",
      { class: "tree-scroll", tabindex: "0", role: "tree", "aria-label": "Spans of this run", id: "span-tree" },
      this.spacer,
      this.window,
    );
    this.root = h(
      "section",
      { class: "spans", "aria-label": "Span tree and timeline" },
      h(
        "div",
        { class: "tree-head" },
        h("span", { class: "col-name" }, "Span"),
        h("span", { class: "col-duration" }, "Duration"),
        h("span", { class: "col-tokens" }, "Tokens"),
        this.axis,
      ),
      this.scroller,
    );
    this.scroller.addEventListener("scroll", () => this.schedule());
    this.scroller.addEventListener("keydown", (event) => this.onKey(event));
    this.window.addEventListener("click", (event) => this.onClick(event));
    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(this.scroller);
  }

  destroy() {
    this.resizeObserver.disconnect();
  }

  // Rebuild the visible rows (after the tree or collapsing changed), then paint.
  // While `followTail` (a live run) and the view is at the bottom, new rows keep it at the bottom.
  refresh({ now = false } = {}) {
    const scroller = this.scroller;
    const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 2 * ROW_HEIGHT;
    this.model.flatten();
    this.spacer.style.height = `${this.model.rows.length * ROW_HEIGHT}px`;
    if (this.followTail && atBottom) scroller.scrollTop = scroller.scrollHeight;
    if (now) this.paint();
    else this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.paint();
    });
  }

  span_range() {
    const model = this.model;
    const start = model.origin ?? 0;
    const end = Math.max(model.latest ?? start, this.now() ?? 0, start + 1);
    return { start, total: end - start };
  }

  paint() {
    const rows = this.model.rows;
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    const range = this.span_range();
    const fragment = document.createDocumentFragment();
    for (let index = first; index < last; index += 1) fragment.append(this.row(rows[index], range));
    this.window.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    this.window.replaceChildren(fragment);
    this.paintAxis(range);
    const inView = rows.slice(Math.floor(top / ROW_HEIGHT), Math.ceil((top + height) / ROW_HEIGHT));
    this.onWindow?.(inView);
  }

  paintAxis(range) {
    const ticks = [];
    for (let i = 0; i <= TICKS; i += 1) {
      const tick = h("span", { class: "tick" }, i ? formatDuration((range.total * i) / TICKS / 1000, { short: true }) : "0");
      tick.style.left = `${(100 * i) / TICKS}%`;
      if (i === TICKS) tick.classList.add("tick-last");
      ticks.push(tick);
    }
    this.axis.replaceChildren(...ticks);
  }

  row(span, range) {
    const hasChildren = span.children.length > 0;
    const collapsed = this.model.collapsed.has(span.id);
    const end = span.end ?? Math.max(this.now() ?? span.start, span.start);
    const bar = h("span", { class: `bar bar-${span.status.toLowerCase()}` });
    bar.style.left = `${(100 * (span.start - range.start)) / range.total}%`;
    bar.style.width = `${Math.max((100 * (end - span.start)) / range.total, 0.15)}%`;
    const name = h(
      "span",
      { class: "col-name" },
      hasChildren
        ? h(
            "button",
            {
              type: "button",
              class: "toggle",
              tabindex: "-1",
              "aria-label": collapsed ? `Expand ${span.label}` : `Collapse ${span.label}`,
              dataset: { toggle: span.id },
            },
            collapsed ? "▸" : "▾",
          )
        : h("span", { class: "toggle-space" }),
      h("span", { class: `dot dot-${span.status.toLowerCase()}`, title: span.status }),
      h("span", { class: "label" }, span.label),
      span.kind === "workflow" ? h("span", { class: "kind" }, "workflow") : null,
    );
    name.style.paddingLeft = `${Math.min(span.depth, 40) * 14}px`;
    const row = h(
      "div",
      {
        class: `span-row${this.selected === span.id ? " selected" : ""}`,
        role: "treeitem",
        id: `span-${span.id}`,
        "aria-level": span.depth + 1,
        "aria-expanded": hasChildren ? String(!collapsed) : undefined,
        "aria-selected": String(this.selected === span.id),
        "aria-label": `${span.label}, ${span.status}`,
        dataset: { spanId: span.id, status: span.status },
      },
      name,
      h("span", { class: "col-duration" }, span.end === null ? "running" : formatDuration((span.end - span.start) / 1000)),
      h("span", { class: "col-tokens" }, tokenText(this.tokens?.(span))),
      h("span", { class: "col-timeline" }, bar),
    );
    return row;
  }

  onClick(event) {
    const toggle = event.target.closest("[data-toggle]");
    if (toggle) {
      this.toggle(this.model.byId.get(toggle.dataset.toggle));
      return;
    }
    const row = event.target.closest("[data-span-id]");
    if (row) {
      this.select(row.dataset.spanId);
      this.scroller.focus({ preventScroll: true });
    }
  }

  toggle(span, open) {
    if (!span || !span.children.length) return;
    const collapse = open === undefined ? !this.model.collapsed.has(span.id) : !open;
    if (collapse) this.model.collapsed.add(span.id);
    else this.model.collapsed.delete(span.id);
    this.refresh();
  }

  indexOf(id) {
    return this.model.rows.findIndex((span) => span.id === id);
  }

  select(id, { reveal = false } = {}) {
    const span = this.model.byId.get(id);
    if (!span) return false;
    if (reveal) {
      let opened = false;
      for (const ancestor of this.model.ancestorsOf(span)) opened = this.model.collapsed.delete(ancestor.id) || opened;
      if (opened) this.refresh();
    }
    this.selected = id;
    this.scroller.setAttribute("aria-activedescendant", `span-${id}`);
    const index = this.indexOf(id);
    if (index >= 0) this.scrollToIndex(index, reveal);
    this.schedule();
    this.onSelect?.(span);
    return true;
  }

  scrollToIndex(index, center) {
    const top = index * ROW_HEIGHT;
    const height = this.scroller.clientHeight;
    if (center) this.scroller.scrollTop = Math.max(0, top - height / 2);
    else if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
    else if (top + ROW_HEIGHT > this.scroller.scrollTop + height)
      this.scroller.scrollTop = top + ROW_HEIGHT - height;
  }

  onKey(event) {
    const rows = this.model.rows;
    if (!rows.length) return;
    const current = this.selected === null ? -1 : this.indexOf(this.selected);
    const page = Math.max(1, Math.floor(this.scroller.clientHeight / ROW_HEIGHT) - 1);
    const span = current >= 0 ? rows[current] : null;
    let next = null;
    switch (event.key) {
      case "ArrowDown":
        next = Math.min(rows.length - 1, current + 1);
        break;
      case "ArrowUp":
        next = Math.max(0, current - 1);
        break;
      case "PageDown":
        next = Math.min(rows.length - 1, current + page);
        break;
      case "PageUp":
        next = Math.max(0, current - page);
        break;
      case "Home":
        next = 0;
        break;
      case "End":
        next = rows.length - 1;
        break;
      case "ArrowRight":
        if (span && span.children.length && this.model.collapsed.has(span.id)) this.toggle(span, true);
        else if (span && span.children.length) next = current + 1;
        break;
      case "ArrowLeft":
        if (span && span.children.length && !this.model.collapsed.has(span.id)) this.toggle(span, false);
        else if (span && span.parentId && this.model.byId.has(span.parentId)) next = this.indexOf(span.parentId);
        break;
      case "Enter":
      case " ":
        if (span) this.onSelect?.(span);
        break;
      default:
        return;
    }
    event.preventDefault();
    if (next !== null && next >= 0) this.select(rows[next].id);
  }
}

function tokenText(tokens) {
  if (tokens === undefined) return "";
  return tokens ? tokens.toLocaleString("en-US") : "–";
}
