"""Workflow definitions: the examples are valid, and each kind of broken graph is refused by name."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from spanline.events.json_schema import render
from spanline.events.workflow_definition import WorkflowDefinition, dependencies, workflow_json_schema
from tests.conftest import PROJECT_ROOT

EXAMPLES = sorted((PROJECT_ROOT / "examples" / "workflows").glob("*.json"))
SCHEMA_FILE = PROJECT_ROOT / "schemas" / "workflows" / "workflow.json"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_committed_schema_is_what_the_models_generate() -> None:
    assert SCHEMA_FILE.read_text() == render(workflow_json_schema()), "run `spanline schemas export`"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_valid_definitions_and_schema_documents(path: Path) -> None:
    document = load(path)
    Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(document)
    definition = WorkflowDefinition.model_validate(document)
    assert definition.name == path.stem


def test_the_research_example_has_fan_out_a_conditional_a_subworkflow_and_two_models() -> None:
    research = WorkflowDefinition.model_validate(load(PROJECT_ROOT / "examples" / "workflows" / "research.json"))
    kinds = [node.kind for node in research.nodes]
    assert len(kinds) >= 6 and kinds.count("model") == 2
    assert {"conditional", "subworkflow", "code", "template"} <= set(kinds)
    fan_out = [node.id for node in research.nodes if dependencies(node) == {"plan"}]
    assert len(fan_out) >= 2


def broken(mutate: Any) -> str:
    document = copy.deepcopy(load(PROJECT_ROOT / "examples" / "workflows" / "research.json"))
    mutate(document)
    with pytest.raises(ValidationError) as refused:
        WorkflowDefinition.model_validate(document)
    return str(refused.value)


def node(document: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in document["nodes"] if n["id"] == node_id)  # type: ignore[no-any-return]


def test_unknown_kind_is_named() -> None:
    assert "node 'plan' has unknown kind 'oracle'" in broken(lambda d: node(d, "plan").update(kind="oracle"))


def test_dangling_node_reference_is_named() -> None:
    message = broken(lambda d: node(d, "brief")["inputs"].update(text={"node": "nowhere"}))
    assert "reads from unknown node 'nowhere'" in message


def test_unknown_workflow_input_is_named() -> None:
    message = broken(lambda d: node(d, "plan")["inputs"].update(question={"workflow_input": "missing"}))
    assert "unknown workflow input 'missing'" in message


def test_cycle_is_named() -> None:
    message = broken(lambda d: node(d, "plan").update(after=[{"node": "answer"}]))
    assert "cycle" in message and "plan" in message and "answer" in message


def test_duplicate_ids_missing_config_and_bad_ports_are_named() -> None:
    assert "used more than once" in broken(lambda d: node(d, "brief").update(id="deep"))
    assert "needs config.prompt" in broken(lambda d: node(d, "plan")["config"].pop("prompt"))
    assert "does not have" in broken(lambda d: node(d, "deep").update(after=[{"node": "route", "port": "x"}]))


def test_unknown_fields_are_refused() -> None:
    assert "extra" in broken(lambda d: d.update(colour="blue")).lower()
