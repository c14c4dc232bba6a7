"""A run's inputs checked against the workflow's declared inputs (types, required, defaults)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from spanline.events.workflow_definition import WorkflowDefinition
from spanline.executor.errors import ExecutionFailure

_INPUT_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "STRING": (str,),
    "NUMBER": (int, float),
    "ARRAY": (list,),
    "CHAT_HISTORY": (list,),
}


def check_inputs(definition: WorkflowDefinition, given: Mapping[str, Any]) -> dict[str, Any]:
    declared = {workflow_input.name: workflow_input for workflow_input in definition.inputs}
    problems = [f"unknown input {name!r}" for name in given if name not in declared]
    resolved: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
            allowed = _INPUT_TYPES.get(spec.type)
            if (allowed and not isinstance(value, allowed)) or (isinstance(value, bool) and spec.type == "NUMBER"):
                problems.append(f"input {name!r} should be {spec.type}, got {type(value).__name__}")
            resolved[name] = value
        elif not spec.required:
            resolved[name] = spec.default
        else:
            problems.append(f"missing required input {name!r}")
    if problems:
        raise ExecutionFailure("INVALID_INPUTS", "; ".join(problems))
    return resolved
