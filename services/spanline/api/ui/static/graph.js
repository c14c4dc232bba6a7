// A workflow definition drawn as a layered graph: each node in the column after everything it depends
// on (longest path from the inputs), edges as curves; `after` edges dashed, with their port.
import { svg } from "./format.js";

const NODE_W = 132;
const NODE_H = 44;
const GAP_X = 46;
const GAP_Y = 22;
const PAD = 16;

export function layers(nodes, edges) {
  const ids = nodes.map((node) => node.id);
  const incoming = new Map(ids.map((id) => [id, []]));
  for (const edge of edges) if (incoming.has(edge.target) && incoming.has(edge.source)) incoming.get(edge.target).push(edge.source);
  const layer = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return 0; // a cycle (refused on upload): draw it rather than loop
    visiting.add(id);
    const value = Math.max(-1, ...incoming.get(id).map(depth)) + 1;
    visiting.delete(id);
    layer.set(id, value);
    return value;
  };
  ids.forEach(depth);
  return layer;
}

export function drawWorkflow(definition) {
  const nodes = definition.nodes;
  const edges = definition.edges;
  const layer = layers(nodes, edges);
  const columns = new Map();
  for (const node of nodes) {
    const column = layer.get(node.id);
    if (!columns.has(column)) columns.set(column, []);
    columns.get(column).push(node);
  }
  const position = new Map();
  const tallest = Math.max(...[...columns.values()].map((column) => column.length));
  for (const [column, members] of columns) {
    const offset = ((tallest - members.length) * (NODE_H + GAP_Y)) / 2;
    members.forEach((node, row) => {
      position.set(node.id, { x: PAD + column * (NODE_W + GAP_X), y: PAD + offset + row * (NODE_H + GAP_Y) });
    });
  }
  const width = PAD * 2 + columns.size * NODE_W + (columns.size - 1) * GAP_X;
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  const root = svg("svg", {
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Graph of workflow ${definition.name}: ${nodes.length} nodes, ${edges.length} edges`,
  });
  root.append(
    svg(
      "defs",
      {},
      svg(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8c96a8" }),
      ),
    ),
  );
  for (const edge of edges) {
    const from = position.get(edge.source);
    const to = position.get(edge.target);
    if (!from || !to) continue;
    const x1 = from.x + NODE_W;
    const y1 = from.y + NODE_H / 2;
    const x2 = to.x;
    const y2 = to.y + NODE_H / 2;
    const bend = Math.max(30, (x2 - x1) / 2);
    root.append(
      svg("path", {
        class: `edge ${edge.kind}`,
        d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
        "marker-end": "url(#arrow)",
        "data-edge": `${edge.source}->${edge.target}`,
      }),
    );
    if (edge.port) {
      const label = svg("text", { class: "port", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" });
      label.textContent = edge.port;
      root.append(label);
    }
  }
  for (const node of nodes) {
    const { x, y } = position.get(node.id);
    const group = svg("g", { class: `node kind-${node.kind}`, transform: `translate(${x},${y})`, "data-node-id": node.id });
    const title = svg("text", { x: 10, y: 18 });
    title.textContent = node.label ?? node.id;
    const kind = svg("text", { class: "sub", x: 10, y: 34 });
    kind.textContent = node.kind + (node.config?.model ? ` · ${node.config.model}` : "");
    group.append(svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }), title, kind);
    root.append(group);
  }
  return root;
}
