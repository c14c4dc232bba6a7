"""Where isolation cannot be had, code nodes are refused with an error naming the opt-out; the opt-out is
logged loudly. Never silently unsafe."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from spanline.core.config import Settings
from spanline.executor.providers.local import LocalProvider
from spanline.executor.sandbox.selection import OPT_OUT, RefusingSandbox, open_code_sandbox
from spanline.store.store import Store
from tests.executor_runtime import Runtime, executor_runtime

GREET = "def main(name):\n    print('hi', name)\n    return {'output': 'hello ' + name}"


@pytest.fixture
async def without_bwrap(settings: Settings, store: Store) -> AsyncIterator[Runtime]:
    missing = settings.model_copy(update={"code_bwrap": "/nonexistent/bwrap"})
    async with executor_runtime(missing, store, {"local": LocalProvider(1)}) as running:
        yield running


async def test_without_bubblewrap_a_code_node_is_rejected_naming_the_opt_out(without_bwrap: Runtime) -> None:
    definition = {
        "name": "greet",
        "inputs": [{"name": "name"}],
        "nodes": [
            {"id": "hi", "kind": "code", "config": {"code": GREET}, "inputs": {"name": {"workflow_input": "name"}}}
        ],
        "outputs": [{"name": "greeting", "from": {"node": "hi"}}],
    }
    assert (await without_bwrap.client.post("/api/v1/workflow/workflows", json=definition)).status_code == 201
    response = await without_bwrap.client.post(
        "/v1/execute-workflow",
        json={"workflow_deployment_name": "greet", "inputs": [{"name": "name", "type": "STRING", "value": "ada"}]},
    )
    error = response.json()["data"]["error"]
    assert error["code"] == "NODE_EXECUTION"
    assert error["message"].startswith("code nodes are off: bubblewrap (/nonexistent/bwrap) is not installed")
    assert OPT_OUT in error["message"] and "apt-get install bubblewrap" in error["message"]


async def test_a_bubblewrap_that_fails_its_startup_probe_turns_code_nodes_off(settings: Settings) -> None:
    sandbox = await open_code_sandbox(settings.model_copy(update={"code_bwrap": "false"}))
    assert isinstance(sandbox, RefusingSandbox)
    assert "startup probe failed (exit 1)" in sandbox.reason and OPT_OUT in sandbox.reason


async def test_no_usable_interpreter_turns_code_nodes_off(settings: Settings) -> None:
    sandbox = await open_code_sandbox(settings.model_copy(update={"code_python": Path("/nonexistent/python3")}))
    assert isinstance(sandbox, RefusingSandbox) and "SPANLINE_CODE_PYTHON" in sandbox.reason


async def test_the_unsafe_opt_out_is_logged_loudly_and_runs(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        sandbox = await open_code_sandbox(settings.model_copy(update={"code_nodes": "unsafe"}))
    assert sandbox.name == "unsafe"
    (record,) = [r for r in caplog.records if OPT_OUT in r.getMessage()]
    assert record.levelno == logging.WARNING and "WITHOUT ISOLATION" in record.getMessage()
    outcome = await sandbox.run(GREET, {"name": "ada"}, 10)
    assert outcome.result == {"ok": True, "value": {"output": "hello ada"}}
    assert outcome.stdout.kept == b"hi ada\n"


async def test_the_default_is_bubblewrap_here(settings: Settings) -> None:
    """CI installs bubblewrap (.ci/run): on this machine code nodes must be isolated, not off."""
    sandbox = await open_code_sandbox(settings)
    assert sandbox.name == "bubblewrap"
