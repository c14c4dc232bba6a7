"""What the browser tests of the web UI share: Debian's Chromium driven by Playwright (never a
downloaded browser), an app with a store and an in-process bus served on 127.0.0.1, runs written
through the consumer's path, and signing in through the page's own form."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright, expect

from spanline.store.store import Store
from tests.conftest import EXAMPLES_DIR
from tests.store_ingest import ingest

CHROMIUM = "/usr/lib/chromium/chromium"
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "ui"
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            await browser.close()


def example_run(name: str) -> tuple[str, list[bytes]]:
    """An example run of tests/data/events with every id replaced by a fresh one (so a test can store
    several copies): its execution id and its events."""
    text = (EXAMPLES_DIR / f"{name}.ndjson").read_text()
    fresh: dict[str, str] = {}
    text = UUID_PATTERN.sub(lambda match: fresh.setdefault(match.group(0), str(uuid.uuid4())), text)
    lines = text.splitlines()
    execution_id = re.search(r'"span_id":"([0-9a-f-]{36})"', lines[0])
    assert execution_id is not None
    return execution_id.group(1), [line.encode() for line in lines]


async def store_run(store: Store, name: str, org: str) -> str:
    execution_id, payloads = example_run(name)
    await ingest(store, payloads, org=org, key=execution_id.encode())
    return execution_id


async def sign_in(page: Page, base_url: str, key: str, path: str = "/ui/executions") -> None:
    await page.goto(base_url + path)
    await page.fill("input[name=api_key]", key)
    await page.keyboard.press("Enter")
    await expect(page.locator("#sign-out")).to_be_visible()
