"""A workflow definition's graph as a diagram draws it: one edge per data binding between nodes (a node
reading another's output) and per `after` dependency (with the conditional's port when it has one)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class WorkflowEdge(BaseModel):
    source: str
    target: str
    kind: Literal["data", "after"]
    port: str | None = None


def workflow_edges(definition: dict[str, Any]) -> list[WorkflowEdge]:
    edges: dict[tuple[str, str, str, str | None], WorkflowEdge] = {}
    for node in definition.get("nodes", []):
        for binding in (node.get("inputs") or {}).values():
            if isinstance(binding, dict) and "node" in binding:
                edge = WorkflowEdge(source=binding["node"], target=node["id"], kind="data")
                edges.setdefault((edge.source, edge.target, edge.kind, None), edge)
        for after in node.get("after") or []:
            edge = WorkflowEdge(source=after["node"], target=node["id"], kind="after", port=after.get("port"))
            edges.setdefault((edge.source, edge.target, edge.kind, edge.port), edge)
    return list(edges.values())
