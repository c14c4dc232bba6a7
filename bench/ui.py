"""The web UI in a real browser (Debian's Chromium through Playwright) on this machine.

Big run: a finished run of 100,000 spans (tests/big_run.py: a workflow of 271 batch nodes, each running a
subworkflow of 367 steps), written through the consumer's own path into a fresh chDB directory, served by
`create_app` on uvicorn on 127.0.0.1 in this process. Per round (--rounds), a fresh page load measures:
- first_spans_ms: navigation start → the first span row in the DOM (performance.now() in the page);
- skeleton_ms: navigation start → the whole run laid out (the header shows 100,000 spans; an upper bound:
  seen by polling from here);
- last_span_ms: the End key on the tree → the run's last span row in the DOM, and
  drag_to_end_ms: scrollTop set to the bottom → the last span row in the DOM;
- most_rows: the most span rows in the DOM at any moment while scrolling the whole run in 100 steps;
- js_heap_mb: the page's used JS heap after a forced GC (CDP Runtime.getHeapUsage);
- api_first_page_ms, api_skeleton_ms: the same server's answer to the page's two first reads, timed from
  this process just before each round (the share of first_spans_ms that is the server, on a shared machine).

Live: a run page opened before its run starts; events emitted onto the in-process bus at --rate events/s
for --live-seconds (the consumer runs in the same process, as in `spanline dev`): each step's initiated
event, then its fulfilled event. Latency = the wall clock when the page's DOM first shows the span (or
its FULFILLED status) minus the wall clock just before the event was handed to the bus.

    PYTHONPATH=$PWD/services:$PWD python bench/ui.py [--rounds 5] [--rate 100] [--live-seconds 20]

Writes bench/results/ui.json and docs/ui/run-100k.png, docs/ui/run-live.png.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from typing import Any

import httpx
import orjson
from playwright.async_api import Page, async_playwright
from tests.big_run import big_run
from tests.live_server import serve
from tests.store_ingest import ingest
from tests.ui_support import CHROMIUM, SCREENSHOTS, VIEWPORT, sign_in

from bench.common import machine, percentiles, write_result
from bench.ui_live import live_events
from spanline.api.app import create_app
from spanline.bus.interface import ORG_HEADER
from spanline.bus.memory import MemoryBus
from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store

# Installed before the page's own scripts: when the first span row appears, and the most rows ever.
PROBE = """
window.__firstRowAt = null;
window.__mostRows = 0;
window.__seen = new Map();
new MutationObserver((mutations) => {
  const rows = document.querySelectorAll('[data-span-id]');
  if (rows.length && window.__firstRowAt === null) window.__firstRowAt = performance.now();
  if (rows.length > window.__mostRows) window.__mostRows = rows.length;
  if (!window.__watchLive) return;
  const now = Date.now();
  for (const m of mutations) for (const node of m.addedNodes) {
    if (!(node instanceof Element)) continue;
    const found = node.matches('[data-span-id]') ? [node] : node.querySelectorAll('[data-span-id]');
    for (const row of found) {
      for (const status of ['ANY', row.dataset.status]) {
        const key = row.dataset.spanId + ':' + status;
        if (!window.__seen.has(key)) window.__seen.set(key, now);
      }
    }
  }
}).observe(document, { childList: true, subtree: true });
"""

# Resolves with the ms from `action` to the moment a row with this span id is in the DOM.
TIME_TO_ROW = """async ([spanId, action]) => {
  const tree = document.getElementById('span-tree');
  const began = performance.now();
  const found = () => document.querySelector(`[data-span-id="${spanId}"]`);
  return await new Promise((resolve) => {
    const observer = new MutationObserver(() => {
      if (found()) { observer.disconnect(); resolve(performance.now() - began); }
    });
    observer.observe(tree, { childList: true, subtree: true });
    if (action === 'end') {
      tree.focus();
      tree.dispatchEvent(new KeyboardEvent('keydown', { key: 'End', bubbles: true }));
    } else {
      tree.scrollTop = tree.scrollHeight;
    }
  });
}"""

SCROLL_THROUGH = """async () => {
  const tree = document.getElementById('span-tree');
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  for (let step = 0; step <= 100; step += 1) {
    tree.scrollTop = (tree.scrollHeight * step) / 100;
    await frame();
  }
  return window.__mostRows;
}"""


async def heap_mb(page: Page) -> float:
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("HeapProfiler.collectGarbage")
    usage = await cdp.send("Runtime.getHeapUsage")
    await cdp.detach()
    return round(usage["usedSize"] / 1e6, 1)


async def api_baseline(client: httpx.AsyncClient, execution_id: str) -> dict[str, float]:
    """The two reads the page starts with, timed from this process against the same server, same moment."""
    times = {}
    for name, path in (
        ("api_first_page_ms", f"/v1/workflow-executions/{execution_id}/detail?span_limit=100"),
        ("api_skeleton_ms", f"/v1/workflow-executions/{execution_id}/span-skeleton"),
    ):
        began = time.perf_counter()
        answer = await client.get(path)
        answer.raise_for_status()
        times[name] = (time.perf_counter() - began) * 1000
    return times


async def big_run_rounds(
    page: Page, client: httpx.AsyncClient, execution_id: str, order: list[str], rounds: int
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {
        "first_spans_ms": [],
        "skeleton_ms": [],
        "last_span_ms": [],
        "drag_to_end_ms": [],
        "api_first_page_ms": [],
        "api_skeleton_ms": [],
    }
    most_rows, heaps = 0, []
    url = f"{str(client.base_url).rstrip('/')}/ui/executions/{execution_id}"
    for round_index in range(rounds):
        for name, value in (await api_baseline(client, execution_id)).items():
            samples[name].append(value)
        await page.goto(url)
        await page.wait_for_selector(f'[data-span-id="{order[0]}"]', timeout=60_000)
        samples["first_spans_ms"].append(await page.evaluate("window.__firstRowAt"))
        await page.locator("#run-span-count:text-is('100,000')").wait_for(timeout=120_000)  # the whole skeleton
        samples["skeleton_ms"].append(await page.evaluate("performance.now()"))
        if round_index == 0:
            most_rows = max(most_rows, await page.evaluate(SCROLL_THROUGH))
            await page.evaluate("document.getElementById('span-tree').scrollTop = 0")
            await page.wait_for_selector(f'[data-span-id="{order[0]}"]')
        samples["last_span_ms"].append(await page.evaluate(TIME_TO_ROW, [order[-1], "end"]))
        await page.evaluate("document.getElementById('span-tree').scrollTop = 0")
        await page.wait_for_selector(f'[data-span-id="{order[0]}"]')
        samples["drag_to_end_ms"].append(await page.evaluate(TIME_TO_ROW, [order[-1], "drag"]))
        most_rows = max(most_rows, await page.evaluate("window.__mostRows"))
        heaps.append(await heap_mb(page))
    await page.keyboard.press("End")
    await page.wait_for_selector(f'[data-span-id="{order[-1]}"][aria-selected="true"]')
    await page.locator("#span-detail h3:text-is('Events (2)')").wait_for()
    await page.locator(".span-row .col-tokens:text-is('150')").first.wait_for()
    await page.screenshot(path=str(SCREENSHOTS / "run-100k.png"))
    return {
        **{name: percentiles(values) for name, values in samples.items()},
        "first_spans_ms_median": round(statistics.median(samples["first_spans_ms"]), 1),
        "api_first_page_ms_median": round(statistics.median(samples["api_first_page_ms"]), 1),
        "last_span_ms_median": round(statistics.median(samples["last_span_ms"]), 1),
        "most_rows_in_dom": most_rows,
        "js_heap_mb": {"max": max(heaps), "median": statistics.median(heaps)},
    }


async def live_round(
    page: Page, base_url: str, bus: MemoryBus, settings: Settings, rate: int, seconds: float
) -> dict[str, Any]:
    execution_id = str(uuid.uuid4())
    await page.goto(f"{base_url}/ui/executions/{execution_id}")
    await page.wait_for_selector("text=Waiting for the run to start…")
    await page.evaluate("window.__watchLive = true")
    producer = bus.producer()
    emitted: dict[str, float] = {}
    events = live_events(execution_id, count=int(rate * seconds))
    began = time.perf_counter()
    for index, (key, build) in enumerate(events):
        target = began + index / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the emitter at `rate`, not synchronisation
        payload = build()
        emitted[key] = time.time() * 1000
        await producer.send(settings.events_topic, payload, key=execution_id.encode(), headers=((ORG_HEADER, b"acme"),))
    await page.wait_for_selector("#run-status >> text=FULFILLED", timeout=60_000)
    seen: dict[str, float] = dict(await page.evaluate("[...window.__seen.entries()]"))
    latencies = [seen[key] - at for key, at in emitted.items() if key in seen]
    await page.screenshot(path=str(SCREENSHOTS / "run-live.png"))
    return {
        "rate_events_per_s": rate,
        "events": len(events),
        "measured": len(latencies),
        "emission_to_dom_ms": percentiles(latencies),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    facts = machine()
    dsn = f"chdb://{tempfile.mkdtemp(prefix='bench-ui-')}"
    settings = Settings(clickhouse_dsn=dsn, kafka_bootstrap=None, consumer_poll_ms=50)
    store = Store(dsn, threads=settings.store_threads)
    await store.run(lambda client: apply_migrations(client, settings.schemas_dir / "clickhouse"))
    key = (await create_api_key(store, "acme")).key
    execution_id = str(uuid.uuid4())
    payloads, order = big_run(execution_id, batches=271, steps=367)
    began = time.perf_counter()
    await ingest(store, payloads, org="acme", key=execution_id.encode())
    ingest_s = time.perf_counter() - began
    bus = MemoryBus(default_partitions=settings.topic_partitions)
    stop = asyncio.Event()
    consumer = asyncio.create_task(run_consumer(settings, store=store, bus=bus, stop=stop))
    result: dict[str, Any] = {
        "benchmark": "ui",
        "machine": facts,
        "spans": len(order),
        "ingest_seconds": round(ingest_s, 1),
    }
    try:
        async with serve(create_app(settings, store=store, bus=bus)) as base_url, async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--disable-dev-shm-usage"])
            context = await browser.new_context(viewport=VIEWPORT)
            await context.add_init_script(PROBE)
            page = await context.new_page()
            await sign_in(page, base_url, key)
            async with httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}, timeout=120) as client:
                result["big_run"] = await big_run_rounds(page, client, execution_id, order, args.rounds)
            result["live"] = await live_round(page, base_url, bus, settings, args.rate, args.live_seconds)
            await browser.close()
    finally:
        stop.set()
        await consumer
        store.close()
    big, live = result["big_run"], result["live"]["emission_to_dom_ms"]
    result["targets"] = {
        "first_spans_ms <= 1000 (median)": big["first_spans_ms_median"] <= 1000,
        "most_rows_in_dom <= 1000": big["most_rows_in_dom"] <= 1000,
        "live p99 <= 250 ms": live.get("p99", 1e9) <= 250,
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--live-seconds", type=float, default=20)
    outcome = asyncio.run(main(parser.parse_args()))
    path = write_result("ui", outcome)
    print(orjson.dumps({k: v for k, v in outcome.items() if k != "machine"}, option=orjson.OPT_INDENT_2).decode())
    print(f"wrote {path}")
