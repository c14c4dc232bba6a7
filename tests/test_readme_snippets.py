"""The README's client snippets ("Use the Vellum SDK", "Send OpenTelemetry traces") run as written
against a live server: each leaves `execution_id`, whose detail then holds the run."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spanline.core.config import Settings
from spanline.store.store import Store
from tests.conftest import PROJECT_ROOT
from tests.intake_runtime import IntakeRuntime, intake_runtime, intake_settings


def python_block(section: str) -> str:
    """The first fenced python block of a README section (from its heading to the next one)."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    body = readme.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", body, re.DOTALL)
    assert found, f"no python block in README section {section!r}"
    return found.group(1)


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


async def test_the_vellum_emitter_snippet(runtime: IntakeRuntime) -> None:
    namespace = await asyncio.to_thread(run_snippet, python_block("Use the Vellum SDK"))
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
