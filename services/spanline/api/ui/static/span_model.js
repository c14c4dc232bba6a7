// A run's spans as a tree: built once from the span skeleton in O(n), flattened to the visible rows
// (collapsed parents hide their subtrees) in O(n), and updated in place by live events.
import { isoToMicros } from "./format.js";

const STATUS_RANK = { INITIATED: 0, STREAMING: 1, PAUSED: 1, FULFILLED: 2, REJECTED: 2 };

export class SpanModel {
  constructor(executionId) {
    this.executionId = executionId;
    this.spans = []; // detail-API page order: (start, span_id)
    this.byId = new Map();
    this.collapsed = new Set();
    this.rows = [];
    this.origin = null; // µs since the epoch of the earliest start
    this.latest = null; // µs of the latest start or end seen
    this.orderDirty = false;
    this.treeDirty = true;
  }

  static fromSkeleton(executionId, skeleton) {
    const model = new SpanModel(executionId);
    const { spans, origin_us: origin } = skeleton;
    for (let index = 0; index < spans.length; index += 1) {
      const [id, parent, label, kind, status, start, end] = spans[index];
      const span = {
        id,
        parentId: parent,
        label,
        kind: kind === "w" ? "workflow" : "node",
        status,
        start: origin + start,
        end: end === null ? null : origin + end,
        order: index,
        children: [],
        depth: 0,
      };
      model.spans.push(span);
      model.byId.set(id, span);
      model.extend(span);
    }
    return model;
  }

  // A first page of the detail API, to paint before the skeleton of a big run has arrived.
  static fromDetailPage(executionId, detail) {
    const model = new SpanModel(executionId);
    detail.spans.forEach((item, index) => {
      const terminal = [...item.events].reverse().find((e) => /\.(fulfilled|rejected)$/.test(e.name));
      const span = {
        id: item.span_id,
        parentId: item.parent_span_id,
        label: item.attributes.label,
        kind: item.name === "workflow.execution" ? "workflow" : "node",
        status: terminal ? (terminal.name.endsWith(".fulfilled") ? "FULFILLED" : "REJECTED") : "INITIATED",
        start: isoToMicros(item.start_ts),
        end: terminal ? isoToMicros(item.end_ts) : null,
        order: index,
        children: [],
        depth: 0,
      };
      model.spans.push(span);
      model.byId.set(span.id, span);
      model.extend(span);
    });
    return model;
  }

  extend(span) {
    if (this.origin === null || span.start < this.origin) this.origin = span.start;
    const last = span.end ?? span.start;
    if (this.latest === null || last > this.latest) this.latest = last;
  }

  // Children lists in page order, roots = spans without a known parent: one pass.
  buildTree() {
    this.roots = [];
    for (const span of this.spans) span.children = [];
    for (const span of this.spans) {
      const parent = span.parentId === null ? undefined : this.byId.get(span.parentId);
      if (parent) parent.children.push(span);
      else this.roots.push(span);
    }
    this.treeDirty = false;
  }

  // The visible rows in tree order (depth first, children in start order), skipping collapsed subtrees.
  flatten() {
    if (this.orderDirty) this.renumber();
    if (this.treeDirty) this.buildTree();
    const rows = [];
    const stack = [];
    for (let i = this.roots.length - 1; i >= 0; i -= 1) {
      this.roots[i].depth = 0;
      stack.push(this.roots[i]);
    }
    while (stack.length) {
      const span = stack.pop();
      rows.push(span);
      if (this.collapsed.has(span.id)) continue;
      for (let i = span.children.length - 1; i >= 0; i -= 1) {
        span.children[i].depth = span.depth + 1;
        stack.push(span.children[i]);
      }
    }
    this.rows = rows;
    return rows;
  }

  renumber() {
    this.spans.sort((a, b) => a.start - b.start || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.spans.forEach((span, index) => {
      span.order = index;
    });
    this.orderDirty = false;
  }

  // The detail API's keyset cursor for the page of `pageSize` spans holding this span.
  pageOf(span, pageSize) {
    if (this.orderDirty) this.renumber();
    const page = Math.floor(span.order / pageSize);
    return { page, cursor: page === 0 ? null : this.spans[page * pageSize - 1].id };
  }

  ancestorsOf(span) {
    const found = [];
    let current = span.parentId === null ? undefined : this.byId.get(span.parentId);
    while (current && found.length < 10_000) {
      found.push(current);
      current = current.parentId === null ? undefined : this.byId.get(current.parentId);
    }
    return found;
  }

  // One SPEC §1 event; returns the span it touched (null when it changed nothing).
  apply(event) {
    const at = isoToMicros(event.timestamp);
    const name = event.name;
    let span = this.byId.get(event.span_id);
    if (!span) {
      const definition = event.body.workflow_definition ?? event.body.node_definition ?? {};
      span = {
        id: event.span_id,
        parentId: event.parent?.span_id ?? null,
        label: definition.name ?? name,
        kind: name.startsWith("workflow.") ? "workflow" : "node",
        status: "INITIATED",
        start: at,
        end: null,
        order: this.spans.length,
        children: [],
        depth: 0,
      };
      const last = this.spans[this.spans.length - 1];
      if (last && (last.start > at || (last.start === at && last.id > span.id))) this.orderDirty = true;
      this.spans.push(span);
      this.byId.set(span.id, span);
      this.treeDirty = true;
    }
    if (name.endsWith(".initiated")) {
      if (at < span.start || span.status === "INITIATED") {
        if (at !== span.start) this.orderDirty = true;
        span.start = Math.min(span.start, at);
      }
    } else if (name.endsWith(".fulfilled") || name.endsWith(".rejected")) {
      span.status = name.endsWith(".fulfilled") ? "FULFILLED" : "REJECTED";
      span.end = at;
    } else if (name.endsWith(".streaming") || name.endsWith(".resumed")) {
      if (STATUS_RANK[span.status] < 2) span.status = "STREAMING";
    } else if (name.endsWith(".paused")) {
      if (STATUS_RANK[span.status] < 2) span.status = "PAUSED";
    }
    this.extend(span);
    return span;
  }
}
