"""What the scheduler knows of finished nodes: their results, which nodes are skipped (untaken branches),
and the value a binding reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from spanline.events.workflow_definition import FromNodeOutput, FromWorkflowInput, NodeDefinition
from spanline.executor.errors import ExecutionFailure


@dataclass(frozen=True, slots=True)
class NodeResult:
    outputs: dict[str, Any] = field(default_factory=dict)
    port: str | None = None
    skipped: bool = False


SKIPPED: Final = NodeResult(skipped=True)


def is_skipped(node: NodeDefinition, results: Mapping[str, NodeResult]) -> bool:
    """Skipped: after an untaken port or a skipped node; or every node it reads from was skipped."""
    for edge in node.after:
        upstream = results[edge.node]
        if upstream.skipped or (edge.port is not None and upstream.port != edge.port):
            return True
    sources = [b.node for b in node.inputs.values() if isinstance(b, FromNodeOutput)]
    return bool(sources) and all(results[source].skipped for source in sources)


def read_binding(binding: Any, results: Mapping[str, NodeResult], inputs: Mapping[str, Any]) -> Any:
    if isinstance(binding, FromWorkflowInput):
        return inputs.get(binding.workflow_input)
    if isinstance(binding, FromNodeOutput):
        result = results[binding.node]
        if result.skipped:
            return None
        if binding.output not in result.outputs:
            raise ExecutionFailure(
                "NODE_EXECUTION",
                f"node {binding.node!r} has no output {binding.output!r}",
                raw_data={"outputs": list(result.outputs)},
            )
        return result.outputs[binding.output]
    return binding.value
