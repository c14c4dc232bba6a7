"""`spanline executor`: a consumer-group member on `spanline.executions` that runs workflows with
bounded concurrency and publishes their events.

A request's offset is committed once its run has started (at-most-once start: a redelivered request
would run the workflow a second time under the same execution_id). A worker that is stopped (SIGTERM,
Ctrl-C, the end of `spanline dev`) cancels its runs, which end REJECTED with WORKFLOW_CANCELLED and
NODE_CANCELLED, so none is left looking alive; a SIGKILL leaves its runs without a terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

import httpx
import msgspec

from spanline.bus.interface import Bus, BusMessage, TopicPartition
from spanline.core.config import Settings
from spanline.events.execution_request import ExecutionRequest, decode_request
from spanline.executor.pricing import PriceTable
from spanline.executor.providers.base import ModelProvider
from spanline.executor.providers.registry import build_providers
from spanline.executor.publisher import EventPublisher
from spanline.executor.runner import WorkflowRunner
from spanline.executor.sandbox.interface import CodeSandbox
from spanline.executor.sandbox.selection import open_code_sandbox
from spanline.executor.tracing import build_tracer_provider, executor_tracer

log = logging.getLogger(__name__)


class ExecutorWorker:
    def __init__(
        self,
        bus: Bus,
        settings: Settings,
        providers: Mapping[str, ModelProvider] | None = None,
        code_sandbox: CodeSandbox | None = None,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._http = httpx.AsyncClient()
        self._publisher = EventPublisher(bus.producer(), settings.events_topic)
        self._tracer_provider = build_tracer_provider(self._publisher.emit, settings.otlp_endpoint)
        self._providers = providers if providers is not None else build_providers(settings, self._http)
        self._code_sandbox = code_sandbox
        self._runs: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.executor_concurrency)

    async def run(self, stopping: asyncio.Event) -> None:
        self._runner = WorkflowRunner(
            executor_tracer(self._tracer_provider),
            self._publisher.emit,
            self._providers,
            PriceTable.load(self._settings.price_table),
            self._code_sandbox or await open_code_sandbox(self._settings),  # probed once, at start
        )
        await self._publisher.start()
        consumer = self._bus.consumer([self._settings.executions_topic], group_id=self._settings.executor_group)
        await consumer.start()
        try:
            while not stopping.is_set():
                messages = await consumer.getmany(max_records=self._settings.executor_concurrency, timeout_ms=200)
                if not messages:
                    continue
                for message in messages:
                    await self._slots.acquire()
                    self._start(message)
                await consumer.commit(_next_offsets(messages))
        finally:
            await self._cancel_runs()
            await consumer.stop()
            await self._publisher.stop()
            self._tracer_provider.shutdown()
            await self._http.aclose()

    def _start(self, message: BusMessage) -> None:
        try:
            request = decode_request(message.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error(
                "skipping a malformed run request at %s/%d@%d: %s",
                message.topic,
                message.partition,
                message.offset,
                exc,
            )
            self._slots.release()
            return
        task = asyncio.create_task(self._execute(request), name=f"run {request.execution_id}")
        self._runs.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._runs.discard(task)
        self._slots.release()

    async def _execute(self, request: ExecutionRequest) -> None:
        outcome = await self._runner.run(request)
        log.info("execution %s %s", request.execution_id, "rejected" if outcome.error else "fulfilled")

    async def _cancel_runs(self) -> None:
        runs = list(self._runs)
        for task in runs:
            task.cancel()
        for task in runs:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _next_offsets(messages: list[BusMessage]) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for message in messages:
        tp = TopicPartition(message.topic, message.partition)
        offsets[tp] = max(offsets.get(tp, 0), message.offset + 1)
    return offsets
