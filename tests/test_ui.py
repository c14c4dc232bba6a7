"""The web UI in a real browser (Debian's Chromium through Playwright) against the app on uvicorn on
127.0.0.1: sign-in and out, the runs list, a run's tree and timeline, a failing run's error, tenancy."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
from playwright.async_api import Browser, Page, Request, expect

from spanline.bus.interface import ORG_HEADER
from spanline.core.config import Settings
from spanline.executor.providers.local import LocalProvider
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.api_data import generate_executions
from tests.api_data import ingest as ingest_runs
from tests.big_run import big_run
from tests.executor_runtime import Runtime, executor_runtime
from tests.store_ingest import ingest
from tests.tcp_proxy import TcpProxy
from tests.test_sse_events import wait_for_subscribers
from tests.ui_support import SCREENSHOTS, VIEWPORT, chromium, example_run, sign_in, store_run

# Waits are on DOM conditions; the deadline is generous because CI's two cores may be busy.
expect.set_options(timeout=30_000)


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
    # Another organization's id looks exactly like an id nobody has used: the page waits for a run to start.
    await sign_in(page, runtime.base_url, other, f"/ui/executions/{uuid.uuid4()}")
    await expect(page.locator("h1")).to_have_text("Waiting for the run to start…")
    unknown_header = await page.locator("main").inner_text()
    await page.goto(runtime.base_url + f"/ui/executions/{execution_id}")
    await expect(page.locator("h1")).to_have_text("Waiting for the run to start…")
    assert (await page.locator("main").inner_text()).replace(str(execution_id), "ID") == re.sub(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", unknown_header
    )
    await expect(page.locator("[data-span-id]")).to_have_count(0)
    text = await page.locator("body").inner_text()
    for secret in ("ResearchWorkflow", "Plan", "why keys?"):
        assert secret not in text
    await page.goto(runtime.base_url + "/ui/executions")
    await expect(page.locator("#runs-status")).to_have_text("No runs match.")


async def test_a_run_started_after_its_page_opened_streams_in_and_resumes_after_a_drop(
    runtime: Runtime, ui_page: Page
) -> None:
    page = ui_page
    execution_id, payloads = example_run("research-nested")
    events_requests: list[dict[str, str]] = []
    resumed = asyncio.Event()

    def on_request(request: Request) -> None:
        if "/events" in request.url:
            events_requests.append(request.headers)
            if "last-event-id" in request.headers:
                resumed.set()

    page.on("request", on_request)
    proxy = TcpProxy(int(runtime.base_url.rsplit(":", 1)[1]))
    await proxy.start()
    try:
        await stream_through_a_drop(runtime, page, proxy, execution_id, payloads, resumed)
    finally:
        await proxy.close()
    resumed_from = [headers["last-event-id"] for headers in events_requests if "last-event-id" in headers]
    assert resumed_from and int(resumed_from[0]) >= 1


async def stream_through_a_drop(
    runtime: Runtime, page: Page, proxy: TcpProxy, execution_id: str, payloads: list[bytes], resumed: asyncio.Event
) -> None:
    await sign_in(page, f"http://127.0.0.1:{proxy.port}", runtime.key, f"/ui/executions/{execution_id}")
    await expect(page.locator("h1")).to_have_text("Waiting for the run to start…")
    await wait_for_subscribers(runtime, 1)
    producer = runtime.bus.producer()

    async def emit(batch: list[bytes]) -> None:
        for payload in batch:
            await producer.send(
                runtime.settings.events_topic, payload, key=execution_id.encode(), headers=((ORG_HEADER, b"acme"),)
            )

    events = [orjson.loads(payload) for payload in payloads]
    first_node = events[1]["span_id"]
    await emit(payloads[:2])  # the workflow and its first node start
    await expect(page.locator(f'[data-span-id="{first_node}"]')).to_have_attribute("data-status", "INITIATED")
    await expect(page.locator("#run-status")).to_have_text("INITIATED")

    # The connection drops; events emitted meanwhile arrive after the page resumes from Last-Event-ID.
    proxy.drop()
    await emit(payloads[2:-1])
    await asyncio.wait_for(resumed.wait(), 30)
    await emit(payloads[-1:])
    await expect(page.locator("#run-status")).to_have_text("FULFILLED", timeout=20_000)
    span_ids = {event["span_id"] for event in events}
    await expect(page.locator("[data-span-id]")).to_have_count(len(span_ids))
    await expect(page.locator('[data-span-id][data-status="FULFILLED"]')).to_have_count(len(span_ids))


async def test_a_100000_span_run_scrolls_to_its_last_span_with_at_most_1000_rows(
    runtime: Runtime, ui_page: Page
) -> None:
    page = ui_page
    execution_id = str(uuid.uuid4())
    payloads, order = big_run(execution_id, batches=271, steps=367)
    assert len(order) == 100_000
    await ingest(runtime.store, payloads, org="acme", key=execution_id.encode())
    detail_cursors: list[str] = []
    page.on("request", lambda r: "/detail" in r.url and detail_cursors.append(cursor_of(r.url)))
    await sign_in(page, runtime.base_url, runtime.key, f"/ui/executions/{execution_id}")
    await expect(page.locator(f'[data-span-id="{order[1]}"]')).to_be_visible(timeout=60_000)
    await expect(page.locator("#run-span-count")).to_have_text("100,000", timeout=120_000)  # the whole skeleton
    await page.evaluate(MAX_ROWS_PROBE)
    tree = page.locator("#span-tree")
    await tree.focus()
    for step in range(1, 11):  # scroll down through the run a tenth at a time
        await tree.evaluate("(el, step) => { el.scrollTop = el.scrollHeight * step / 10; }", step)
        index = min(len(order) - 1, (len(order) * step) // 10 - 5)
        await expect(page.locator(f'[data-span-id="{order[index]}"]')).to_be_attached()
    await page.keyboard.press("End")
    last = order[-1]
    await expect(page.locator(f'[data-span-id="{last}"]')).to_be_in_viewport()
    await expect(page.locator(f'[data-span-id="{last}"]')).to_have_attribute("aria-selected", "true")
    await expect(page.locator("#span-detail")).to_contain_text("Events (2)")
    await expect(page.locator("#run-status")).to_have_text("FULFILLED")
    most = await page.evaluate("window.__mostSpanRows")
    assert 0 < most <= 1000, most
    # The last page came from the detail API's keyset cursor (the span before it), not by walking pages.
    assert order[len(order) - 100 - 1] in detail_cursors
    assert len(detail_cursors) < 50
    await page.screenshot(path=str(SCREENSHOTS / "run-100k.png"))


def cursor_of(url: str) -> str:
    return parse_qs(urlparse(url).query).get("prev_span_id", [""])[0]


# Counts the span rows in the DOM after every change, keeping the most ever seen.
MAX_ROWS_PROBE = """() => {
  window.__mostSpanRows = document.querySelectorAll('[data-span-id]').length;
  new MutationObserver(() => {
    const rows = document.querySelectorAll('[data-span-id]').length;
    if (rows > window.__mostSpanRows) window.__mostSpanRows = rows;
  }).observe(document.body, { childList: true, subtree: true });
}"""


async def test_the_usage_charts_plot_the_numbers_the_api_gives(runtime: Runtime, ui_page: Page) -> None:
    page = ui_page
    start = datetime(2026, 11, 2, tzinfo=UTC)
    await ingest_runs(runtime.store, generate_executions(random.Random(14), 60, orgs=["acme"], start=start, days=1))
    query = {
        "from": "2026-11-02T00:00:00Z",
        "to": "2026-11-03T00:00:00Z",
        "dimensions": ["model"],
        "measures": ["cost_usd", "total_tokens", "calls", "latency_p50", "latency_p95"],
        "granularity": "hour",
        "limit": 10000,
    }
    rows = (await runtime.client.post("/v1/usage/query", json=query)).json()["rows"]
    assert rows, "the example runs have model calls"
    await sign_in(
        page, runtime.base_url, runtime.key, "/ui/usage?from=2026-11-02T00:00&to=2026-11-03T00:00&granularity=hour"
    )
    await expect(page.locator("#usage-table tbody tr")).to_have_count(len(rows))
    models = sorted({row["model"] for row in rows})
    buckets = sorted({row["bucket"] for row in rows})
    value = {(row["bucket"], row["model"]): row for row in rows}
    for chart, measures in (("cost", ["cost_usd"]), ("tokens", ["total_tokens"]), ("calls", ["calls"])):
        plotted = await page.locator(f"#chart-{chart}").evaluate("el => el.uplot.data")
        assert plotted[0] == [datetime.fromisoformat(bucket).timestamp() for bucket in buckets]
        expected = [[value.get((b, m), {}).get(measure) for b in buckets] for m in models for measure in measures]
        assert plotted[1:] == expected, chart
    latency = await page.locator("#chart-latency").evaluate("el => el.uplot.data")
    assert latency[1:] == [
        [value.get((b, m), {}).get(measure) for b in buckets]
        for m in models
        for measure in ("latency_p50", "latency_p95")
    ]
    labels = await page.locator("#chart-cost").evaluate("el => el.uplot.series.slice(1).map(s => s.label)")
    assert labels == models
    await page.screenshot(path=str(SCREENSHOTS / "usage.png"))


async def test_a_workflow_is_drawn_and_its_form_starts_a_run_that_goes_live(runtime: Runtime, ui_page: Page) -> None:
    page = ui_page
    await sign_in(page, runtime.base_url, runtime.key, "/ui/workflows")
    await page.click("#workflow-list >> text=research")
    workflow = (await runtime.client.get("/api/v1/workflow/workflows/research")).json()
    await expect(page.locator("#workflow-graph [data-node-id]")).to_have_count(len(workflow["nodes"]))
    await expect(page.locator("#workflow-graph [data-edge]")).to_have_count(len(workflow["edges"]))
    assert workflow["edges"] and workflow["versions"][0]["version"] == workflow["version"]
    await page.screenshot(path=str(SCREENSHOTS / "workflow.png"))
    await page.fill("#input-question", "why keys?")
    await page.click("text=Start run")
    await expect(page).to_have_url(re.compile(r"/ui/executions/[0-9a-f-]{36}$"))
    execution_id = page.url.rsplit("/", 1)[1]
    await expect(page.locator("#run-status")).to_have_text("FULFILLED", timeout=30_000)
    # Every span the run emitted (the page is live: it may be ahead of what the consumer has stored).
    emitted = {str(event.span_id) for _, event in await runtime.events_of(uuid.UUID(execution_id))}
    await expect(page.locator("[data-span-id]")).to_have_count(len(emitted))
    rendered = await page.locator("[data-span-id]").evaluate_all("rows => rows.map(r => r.dataset.spanId)")
    assert set(rendered) == emitted
    await expect(page.locator("#live-note")).to_contain_text("The run ended: FULFILLED")
