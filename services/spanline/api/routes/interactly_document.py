"""The parts of Interactly's workflow run document (seeds/003) that spanline has no data for: every field
is present with a neutral value (null, 0, false, [], {}) so a client written against Interactly's page finds
each key. Only identifiers spanline knows are filled in; docs/read_api.md lists which fields are real."""

from __future__ import annotations

from typing import Any


def _llms_config() -> dict[str, Any]:
    return {
        "logical_id": None,
        "provider": None,
        "streaming": False,
        "model_kwargs": {},
        "do_not_split_sentences": False,
        "type": None,
    }


def _static_messages() -> dict[str, Any]:
    return {"static_messages": [], "static_messages_selection_mode": None}


def workflow_config_fully_hydrated(workflow_id: str, workflow_name: str) -> dict[str, Any]:
    """The hydrated configuration of the run's workflow: spanline's definitions are not Interactly's
    voice-agent configs, so only the workflow's id and name are filled; lists are empty."""
    return {
        "workflow_config": {
            "logical_id": workflow_id,
            "name": workflow_name or None,
            "description": None,
            "category": None,
            "llms_config": _llms_config(),
            "main_response_config": {"prompt": None},
            "backchannel_response_config": {"prompt": None},
            "default_prompt_prefix": None,
            "default_prompt_suffix": None,
            "tools_config": {"tools": []},
            "mcp_servers": [],
            "global_condition_evaluation_method": None,
            "nodes": [],
            "edges": [],
            "evaluation_config": {
                "evaluator_workflow_id": None,
                "evaluator_workflow_version_number": None,
                "enable_turn_by_turn_evaluation": False,
            },
            "miscellaneous": {},
        },
        "node_configs": [],
        "edge_configs": [],
        "dynamic_variables": {},
        "runtime_variables": {},
    }


def input_output_pair(*, org: str, workflow_id: str, workflow_run_id: str, inputs: Any, outputs: Any) -> dict[str, Any]:
    """The run's one turn: its inputs as dynamic variables, its outputs as the output of thread "main"."""
    return {
        "run_input": {
            "dynamic_variables": inputs if isinstance(inputs, dict) else {},
            "runtime_variables": {},
            "miscellaneous": {},
            "command": "start",
            "workflow_id": workflow_id,
            "version_number": 0,
            "run_by": None,
            "workflow_run_id": workflow_run_id,
            "team_id": org,
            "thread_to_node_inputs": {},
        },
        "run_output": {
            "events": [],
            "thread_to_node_outputs": {"main": outputs} if isinstance(outputs, dict) else {},
        },
        "evaluation": {},
    }
