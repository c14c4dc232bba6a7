"""The web UI in a real browser (Debian's Chromium through Playwright) against the app on uvicorn on
127.0.0.1: sign-in and out, the runs list, a run's tree and timeline, a failing run's error, tenancy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from spanline.core.config import Settings
from spanline.executor.providers.local import LocalProvider
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.executor_runtime import Runtime, executor_runtime
from tests.ui_support import SCREENSHOTS, VIEWPORT, chromium, sign_in, store_run


@pytest.fixture
async def runtime(settings: Settings, store: Store) -> AsyncIterator[Runtime]:
    fast = settings.model_copy(update={"consumer_poll_ms": 50})
    async with executor_runtime(fast, store, {"local": LocalProvider(300)}, with_consumer=True) as running:
        yield running


@pytest.fixture
async def ui_browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def ui_page(ui_browser: Browser) -> AsyncIterator[Page]:
    context = await ui_browser.new_context(viewport=VIEWPORT)
    page = await context.new_page()
    yield page
    await context.close()


async def test_sign_in_keeps_the_key_out_of_urls_and_sign_out_forgets_it(runtime: Runtime, ui_page: Page) -> None:
    page = ui_page
    requests: list[tuple[str, str | None]] = []
    page.on("request", lambda request: requests.append((request.url, request.headers.get("x-api-key"))))
    await page.goto(runtime.base_url + "/")
    await expect(page.locator("input[name=api_key]")).to_be_focused()
    await page.fill("input[name=api_key]", "not-a-key")
    await page.keyboard.press("Enter")
    await expect(page.locator("#sign-in-error")).to_have_text("That API key was not accepted.")
    await page.fill("input[name=api_key]", runtime.key)
    await page.keyboard.press("Enter")
    await expect(page.locator("#who")).to_have_text("organization acme")
    await expect(page.locator("h1")).to_have_text("Runs")
    assert await page.evaluate("sessionStorage.getItem('spanline.api_key')") == runtime.key
    after_sign_in = requests[next(i for i, (_, key) in enumerate(requests) if key == runtime.key) :]
    api_calls = [key for url, key in after_sign_in if "/v1/" in url or "/api/" in url]
    assert len(api_calls) >= 2 and set(api_calls) == {runtime.key}
    assert all(runtime.key not in url for url, _ in requests)
    assert all(url.startswith(runtime.base_url) for url, _ in requests), "a request left the page's origin"

    await page.reload()  # the key survives a reload of the tab
    await expect(page.locator("#who")).to_have_text("organization acme")
    await page.click("#sign-out")
    await expect(page.locator("input[name=api_key]")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('spanline.api_key')") is None
    await expect(page.locator("#nav")).to_be_hidden()


async def test_runs_list_shows_newest_first_and_new_runs_without_reload(runtime: Runtime, ui_page: Page) -> None:
    page = ui_page
    first = await store_run(runtime.store, "research-nested", "acme")
    failing = await store_run(runtime.store, "failing", "acme")
    await sign_in(page, runtime.base_url, runtime.key)
    rows = page.locator("#runs-body tr")
    await expect(rows).to_have_count(2)
    listed = await runtime.client.get("/v1/workflow-executions")
    expected = [run["execution_id"] for run in listed.json()["results"]]
    assert await rows.evaluate_all("rows => rows.map(r => r.dataset.executionId)") == expected
    row = page.locator(f'tr[data-execution-id="{failing}"]')
    await expect(row).to_contain_text("REJECTED")
    await expect(page.locator(f'tr[data-execution-id="{first}"]')).to_contain_text("FULFILLED")

    later = await store_run(runtime.store, "research-nested", "acme")  # appears without a reload
    await expect(page.locator(f'tr[data-execution-id="{later}"]')).to_be_visible(timeout=15_000)
    await page.screenshot(path=str(SCREENSHOTS / "runs.png"))

    await page.select_option("#filter-status", "REJECTED")
    await page.click("text=Apply")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-execution-id", failing)
    assert "status=REJECTED" in page.url


async def test_a_run_shows_its_tree_timeline_and_a_spans_payloads(runtime: Runtime, ui_page: Page) -> None:
    page = ui_page
    execution_id = await store_run(runtime.store, "research-nested", "acme")
    await sign_in(page, runtime.base_url, runtime.key, f"/ui/executions/{execution_id}")
    await expect(page.locator("#run-status")).to_have_text("FULFILLED")
    detail = (
        await runtime.client.get(f"/v1/workflow-executions/{execution_id}/detail", params={"span_limit": 1000})
    ).json()
    span_ids = {span["span_id"] for span in detail["spans"]}
    await expect(page.locator("[data-span-id]")).to_have_count(len(span_ids))
    assert set(await page.locator("[data-span-id]").evaluate_all("rs => rs.map(r => r.dataset.spanId)")) == span_ids
    node = next(span for span in detail["spans"] if span["name"] == "node.execution" and span["usage_result"])
    await page.click(f'[data-span-id="{node["span_id"]}"]')
    panel = page.locator("#span-detail")
    await expect(panel).to_contain_text(node["attributes"]["label"])
    await expect(panel).to_contain_text("Inputs")
    model = node["usage_result"]["usage"][0]["ml_model_name"]
    await expect(panel).to_contain_text(model)
    assert f"span={node['span_id']}" in page.url
    await page.screenshot(path=str(SCREENSHOTS / "run.png"))

    await page.reload()  # ?span= deep-links to the span
    await expect(page.locator(f'[data-span-id="{node["span_id"]}"]')).to_have_attribute("aria-selected", "true")
    await expect(panel).to_contain_text(model)


async def test_a_failing_run_shows_its_error(runtime: Runtime, ui_page: Page) -> None:
    page = ui_page
    execution_id = await store_run(runtime.store, "failing", "acme")
    await sign_in(page, runtime.base_url, runtime.key, f"/ui/executions/{execution_id}")
    await expect(page.locator("#run-status")).to_have_text("REJECTED")
    error = (await runtime.client.get(f"/v1/workflows/executions/{execution_id}/status")).json()["error"]
    await expect(page.locator("#run-error")).to_contain_text(error["message"])
    await expect(page.locator("#run-error")).to_contain_text(error["code"])


async def test_another_organizations_run_shows_nothing_of_it(runtime: Runtime, ui_page: Page) -> None:
    page = ui_page
    execution_id = await store_run(runtime.store, "research-nested", "acme")
    other = (await create_api_key(runtime.store, "globex")).key
    await sign_in(page, runtime.base_url, other, f"/ui/executions/{execution_id}")
    await expect(page.locator("h1")).to_have_text("Run not found")
    await expect(page.locator("[data-span-id]")).to_have_count(0)
    text = await page.locator("body").inner_text()
    for secret in ("ResearchWorkflow", "Plan", "why keys?"):
        assert secret not in text
    await page.goto(runtime.base_url + "/ui/executions")
    await expect(page.locator("#runs-status")).to_have_text("No runs match.")
