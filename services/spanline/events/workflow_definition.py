"""Workflow definitions: the JSON format users upload (schemas/workflows/workflow.json is generated from
these models) and the checks that refuse a broken graph before it is stored.

A node's inputs bind to a workflow input, to another node's output, or to a literal. A node runs once
everything it reads from, and everything in its `after` list, has run; an `after` entry with a `port`
makes the node run only when that conditional node chose that port (nodes on untaken branches are skipped).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NodeKind = Literal["model", "code", "conditional", "template", "subworkflow"]
NODE_KINDS: Final = frozenset(NodeKind.__args__)  # type: ignore[attr-defined]
InputType = Literal["STRING", "NUMBER", "JSON", "CHAT_HISTORY", "ARRAY"]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkflowInput(_Strict):
    name: Identifier
    type: InputType = "STRING"
    required: bool = True
    default: Any = None


class FromWorkflowInput(_Strict):
    workflow_input: Identifier


class FromNodeOutput(_Strict):
    node: Identifier
    output: str = "output"


class Literal_(_Strict):
    value: Any


Binding = FromWorkflowInput | FromNodeOutput | Literal_


class After(_Strict):
    node: Identifier
    port: str | None = None


class NodeDefinition(_Strict):
    id: Identifier
    kind: str = Field(description="one of: " + ", ".join(sorted(NODE_KINDS)))
    label: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Binding] = Field(default_factory=dict)
    after: list[After] = Field(default_factory=list)
    timeout_s: float | None = Field(default=None, gt=0, le=3600)


class WorkflowOutput(_Strict):
    name: Identifier
    source: FromNodeOutput | FromWorkflowInput = Field(alias="from")


class WorkflowDefinition(_Strict):
    name: Identifier
    description: str = ""
    inputs: list[WorkflowInput] = Field(default_factory=list)
    nodes: list[NodeDefinition] = Field(min_length=1)
    outputs: list[WorkflowOutput] = Field(default_factory=list)
    timeout_s: float | None = Field(default=None, gt=0, le=86400)

    @model_validator(mode="after")
    def _graph_is_sound(self) -> WorkflowDefinition:
        problems = graph_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def dependencies(node: NodeDefinition) -> set[str]:
    """The nodes that must finish before `node` may start."""
    upstream = {binding.node for binding in node.inputs.values() if isinstance(binding, FromNodeOutput)}
    return upstream | {edge.node for edge in node.after}


def graph_problems(definition: WorkflowDefinition) -> list[str]:
    """Everything wrong with the graph, each as one sentence naming the node at fault."""
    problems: list[str] = []
    ids = [node.id for node in definition.nodes]
    known_nodes = set(ids)
    known_inputs = {workflow_input.name for workflow_input in definition.inputs}
    problems += [
        f"node id {node_id!r} is used more than once" for node_id in sorted({i for i in ids if ids.count(i) > 1})
    ]
    for node in definition.nodes:
        if node.kind not in NODE_KINDS:
            problems.append(f"node {node.id!r} has unknown kind {node.kind!r} (known: {', '.join(sorted(NODE_KINDS))})")
        for name, binding in node.inputs.items():
            if isinstance(binding, FromNodeOutput) and binding.node not in known_nodes:
                problems.append(f"node {node.id!r} input {name!r} reads from unknown node {binding.node!r}")
            if isinstance(binding, FromWorkflowInput) and binding.workflow_input not in known_inputs:
                problems.append(
                    f"node {node.id!r} input {name!r} reads unknown workflow input {binding.workflow_input!r}"
                )
        for edge in node.after:
            if edge.node not in known_nodes:
                problems.append(f"node {node.id!r} runs after unknown node {edge.node!r}")
            elif edge.port is not None:
                upstream = next(n for n in definition.nodes if n.id == edge.node)
                if upstream.kind != "conditional":
                    problems.append(f"node {node.id!r} waits on port {edge.port!r} of non-conditional {edge.node!r}")
                elif edge.port not in conditional_ports(upstream):
                    problems.append(f"node {node.id!r} waits on port {edge.port!r} that {edge.node!r} does not have")
        problems += kind_config_problems(node)
    for output in definition.outputs:
        source = output.source
        if isinstance(source, FromNodeOutput) and source.node not in known_nodes:
            problems.append(f"output {output.name!r} reads from unknown node {source.node!r}")
        if isinstance(source, FromWorkflowInput) and source.workflow_input not in known_inputs:
            problems.append(f"output {output.name!r} reads unknown workflow input {source.workflow_input!r}")
    cycle = find_cycle(definition)
    if cycle:
        problems.append("the graph has a cycle: " + " → ".join(cycle))
    return problems


def conditional_ports(node: NodeDefinition) -> set[str]:
    branches = node.config.get("branches", [])
    ports = {branch.get("port") for branch in branches if isinstance(branch, dict)}
    default = node.config.get("default_port")
    return {str(port) for port in ports | {default} if port is not None}


_REQUIRED_CONFIG: Final[dict[str, tuple[str, ...]]] = {
    "model": ("model", "prompt"),
    "code": ("code",),
    "conditional": ("branches",),
    "template": ("template",),
    "subworkflow": ("workflow",),
}


def kind_config_problems(node: NodeDefinition) -> list[str]:
    required = _REQUIRED_CONFIG.get(node.kind, ())
    return [f"node {node.id!r} ({node.kind}) needs config.{key}" for key in required if key not in node.config]


def find_cycle(definition: WorkflowDefinition) -> list[str] | None:
    """One cycle of the dependency graph as a path of node ids, or None (iterative DFS)."""
    graph = {node.id: sorted(dependencies(node)) for node in definition.nodes}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in graph:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node_id, index = stack.pop()
            if index == 0:
                state[node_id] = 1
                path.append(node_id)
            upstream = [u for u in graph.get(node_id, []) if u in graph]
            if index < len(upstream):
                stack.append((node_id, index + 1))
                nxt = upstream[index]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node_id] = 2
                path.pop()
    return None


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema of a definition (structure only; graph_problems adds the cross-node checks)."""
    schema = WorkflowDefinition.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://spanline.dev/schemas/workflows/workflow.json",
        **schema,
    }
