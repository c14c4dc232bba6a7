"""The example workflows shipped in examples/workflows, loaded into an organization by `spanline dev`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from spanline.events.workflow_definition import WorkflowDefinition
from spanline.store.store import Store
from spanline.store.workflows import (
    StoredWorkflow,
    SubworkflowError,
    UnknownWorkflowError,
    find_workflow,
    save_workflow,
)

EXAMPLES_DIR: Final = Path(__file__).resolve().parents[3] / "examples" / "workflows"


def example_definitions(directory: Path = EXAMPLES_DIR) -> list[WorkflowDefinition]:
    return [WorkflowDefinition.model_validate(json.loads(p.read_text())) for p in sorted(directory.glob("*.json"))]


async def load_examples(store: Store, org: str, directory: Path = EXAMPLES_DIR) -> list[StoredWorkflow]:
    """Store each example the organization does not have yet; callees before their callers."""
    pending = example_definitions(directory)
    loaded: list[StoredWorkflow] = []
    while pending:
        waiting: list[WorkflowDefinition] = []
        for definition in pending:
            try:
                loaded.append(await find_workflow(store, org, definition.name))
            except UnknownWorkflowError:
                try:
                    loaded.append(await save_workflow(store, org, definition))
                except SubworkflowError:
                    waiting.append(definition)  # its subworkflow is later in the list
        if len(waiting) == len(pending):
            raise SubworkflowError(f"examples call workflows that are not there: {[d.name for d in waiting]}")
        pending = waiting
    return loaded
