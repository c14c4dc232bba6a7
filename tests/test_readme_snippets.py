"""The README's client snippets ("Use the Vellum SDK", "Send OpenTelemetry traces") run as written
against a live server: each leaves `execution_id`, whose detail then holds the run."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spanline.core.config import Settings
from spanline.executor.providers.local import LocalProvider
from spanline.store.store import Store
from tests.conftest import PROJECT_ROOT
from tests.executor_runtime import executor_runtime
from tests.intake_runtime import IntakeRuntime, intake_runtime, intake_settings


def python_block(section: str, index: int = 0) -> str:
    """The index-th fenced python block of a README section (from its heading to the next one)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    body = readme.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"```python\n(.*?)```", body, re.DOTALL)
    assert len(found) > index, f"no python block {index} in README section {section!r}"
    return str(found[index])


@pytest.fixture
async def runtime(settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[IntakeRuntime]:
    async with intake_runtime(intake_settings(settings, None), store) as running:
        monkeypatch.setenv("SPANLINE_URL", running.base_url)
        monkeypatch.setenv("SPANLINE_API_KEY", running.key)
        yield running


async def stored_detail(runtime: IntakeRuntime, execution_id: str, spans: int) -> Any:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        response = await runtime.client.get(f"/v1/workflow-executions/{execution_id}/detail")
        if response.status_code == 200 and len(response.json()["spans"]) == spans and response.json()["end"]:
            return response.json()
        assert asyncio.get_running_loop().time() < deadline, response.text
        await asyncio.sleep(0.05)  # poll until the consumer stored the run


def run_snippet(code: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(code, "README.md", "exec"), namespace)  # the README's own code
    return namespace


async def test_the_vellum_sdk_snippet(settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    async with executor_runtime(settings, store, {"local": LocalProvider(5)}, with_consumer=True) as running:
        monkeypatch.setenv("SPANLINE_URL", running.base_url)
        monkeypatch.setenv("SPANLINE_API_KEY", running.key)
        namespace = await asyncio.to_thread(run_snippet, python_block("Use the Vellum SDK"))
        assert namespace["status"].status == "FULFILLED" and set(namespace["status"].outputs) == {"summary"}
        assert len(namespace["detail"].spans) == 3  # whole at once: the workflow and its two nodes
        assert namespace["states"][0] == "INITIATED" and namespace["states"][-1] == "FULFILLED"
        detail = (await running.client.get(f"/v1/workflow-executions/{namespace['execution_id']}/detail")).json()
        assert detail["external_id"] == "ticket-42" and detail["metadata"] == {"user": "u-7"}
        assert [(a["output_key"], a["quality"]) for a in detail["actuals"]] == [("summary", 0.9)]


async def test_the_vellum_emitter_snippet(runtime: IntakeRuntime) -> None:
    namespace = await asyncio.to_thread(run_snippet, python_block("Use the Vellum SDK", 1))
    detail = await stored_detail(runtime, namespace["execution_id"], 2)  # the workflow and its node
    assert detail["outputs"] == [
        {"id": detail["outputs"][0]["id"], "name": "greeting", "type": "STRING", "value": "hello spanline"}
    ]
    retrieve = namespace["client"].workflow_executions.retrieve_workflow_execution_detail  # synchronous: a thread
    sdk_detail = await asyncio.to_thread(retrieve, namespace["execution_id"])
    assert [o.value for o in sdk_detail.outputs] == ["hello spanline"]


async def test_the_opentelemetry_snippet(runtime: IntakeRuntime) -> None:
    namespace = await asyncio.to_thread(run_snippet, python_block("Send OpenTelemetry traces"))
    execution_id = namespace["execution_id"]
    detail = await stored_detail(runtime, execution_id, 3)  # the workflow, the root span's node, the LLM node
    usage = [u for result in detail["usage_results"] for u in result["usage"]]
    assert [(u["ml_model_name"], u["ml_model_usage"]["input_token_count"]) for u in usage] == [("gpt-4o-mini", 812)]
    run = (await runtime.client.get(f"/workflows/v1/workflow-runs/{execution_id}")).json()["workflow_run"]
    assert run["workflow_run"]["llm_token_usage"]["breakdown_by_models"][0]["provider"] == "openai"
