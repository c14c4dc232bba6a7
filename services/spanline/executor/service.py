"""The executor service's composition root: build the bus and the worker; run workflows from
`spanline.executions` until SIGTERM or SIGINT; close in reverse order."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping

from spanline.bus.factory import create_bus, ensure_topics
from spanline.bus.interface import Bus
from spanline.core.config import Settings
from spanline.executor.providers.base import ModelProvider
from spanline.executor.sandbox.interface import CodeSandbox
from spanline.executor.worker import ExecutorWorker

log = logging.getLogger(__name__)


async def run_executor(
    settings: Settings,
    *,
    bus: Bus,
    stop: asyncio.Event,
    providers: Mapping[str, ModelProvider] | None = None,
    code_sandbox: CodeSandbox | None = None,
) -> None:
    """Run workflows until `stop` is set, then cancel the runs in flight; for embedding in `spanline dev`
    and in tests (`providers` replaces the configured model providers; `code_sandbox` one already opened,
    else the worker opens it from the settings)."""
    await ExecutorWorker(bus, settings, providers, code_sandbox).run(stop)


async def run(settings: Settings) -> None:
    """`spanline executor`: make sure the topics exist, run workflows until SIGTERM/SIGINT."""
    bus = create_bus(settings)
    stop = asyncio.Event()
    running = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(signum, stop.set)
    try:
        await ensure_topics(bus, settings)
        log.info("executor: group %s on %s", settings.executor_group, settings.executions_topic)
        await run_executor(settings, bus=bus, stop=stop)
        log.info("executor: stopped")
    finally:
        await bus.close()
