"""`spanline executor`: a consumer-group member on `spanline.executions` that runs workflows with
bounded concurrency and publishes their events.

Delivery (docs/executor.md): a request's offset is committed only after its run ended and the broker
acknowledged the run's events (`RequestOffsets`), so the requests of a worker that dies are redelivered
to another member, which runs them again; the re-run emits the same span and event ids (runner.py), so
the stored run has one copy of each event. A worker never runs one execution_id twice at once. While
every slot is busy the worker pauses its partitions and keeps polling (never blocking past
max.poll.interval.ms); a failed commit (a rebalance, the broker away) is logged and retried, never
cancelling runs. A worker that is stopped (SIGTERM, Ctrl-C, the end of `spanline dev`) cancels its runs,
which end REJECTED with WORKFLOW_CANCELLED and NODE_CANCELLED and are committed as ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from uuid import UUID

import httpx
import msgspec

from spanline.bus.interface import Bus, BusConsumer, BusMessage, BusUnavailableError, TopicPartition
from spanline.core.config import Settings
from spanline.events.execution_request import ExecutionRequest, decode_request
from spanline.executor.pricing import PriceTable
from spanline.executor.providers.base import ModelProvider
from spanline.executor.providers.registry import build_providers
from spanline.executor.publisher import EventPublisher
from spanline.executor.request_offsets import RequestOffsets
from spanline.executor.runner import WorkflowRunner
from spanline.executor.sandbox.interface import CodeSandbox
from spanline.executor.sandbox.selection import open_code_sandbox
from spanline.executor.tracing import build_tracer_provider, executor_tracer

log = logging.getLogger(__name__)

_POLL_MS = 200
_COMMIT_TIMEOUT_S = 5.0


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
        self._publisher = EventPublisher(
            bus.producer(), settings.events_topic, max_queued=settings.executor_max_queued_events
        )
        self._tracer_provider = build_tracer_provider(self._publisher.emit, settings.otlp_endpoint)
        self._providers = providers if providers is not None else build_providers(settings, self._http)
        self._code_sandbox = code_sandbox
        self._runs: dict[UUID, asyncio.Task[None]] = {}
        self._requests_of: dict[UUID, set[tuple[TopicPartition, int]]] = {}
        self._offsets = RequestOffsets()

    async def run(self, stopping: asyncio.Event) -> None:
        self._runner = WorkflowRunner(
            executor_tracer(self._tracer_provider),
            self._publisher.emit,
            self._providers,
            PriceTable.load(self._settings.price_table),
            self._code_sandbox or await open_code_sandbox(self._settings),  # probed once, at start
            room=self._publisher.wait_for_room,
        )
        await self._publisher.start()
        consumer = self._bus.consumer([self._settings.executions_topic], group_id=self._settings.executor_group)
        await consumer.start()
        try:
            while not stopping.is_set():
                await self._poll_once(consumer)
        finally:
            await self._cancel_runs()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._publisher.drain(), 30.0)
            await self._commit(consumer)
            await consumer.stop()
            await self._publisher.stop()
            self._tracer_provider.shutdown()
            await self._http.aclose()

    async def _poll_once(self, consumer: BusConsumer) -> None:
        assignment = consumer.assignment()
        self._offsets.keep(assignment)
        free = self._settings.executor_concurrency - len(self._runs)
        # Full: fetch nothing but keep polling, so the group does not think this member is gone.
        if free <= 0:
            consumer.pause(assignment)
        else:
            consumer.resume(assignment)
        for message in await consumer.getmany(max_records=max(free, 1), timeout_ms=_POLL_MS):
            self._start(message)
        await self._commit(consumer)

    def _start(self, message: BusMessage) -> None:
        tp = TopicPartition(message.topic, message.partition)
        self._offsets.fetched(tp, message.offset)
        try:
            request = decode_request(message.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("skipping a malformed run request at %s/%d@%d: %s", tp.topic, tp.partition, message.offset, exc)
            self._offsets.ended(tp, message.offset)
            return
        execution_id = request.execution_id
        self._requests_of.setdefault(execution_id, set()).add((tp, message.offset))
        if execution_id in self._runs:  # redelivered (a rebalance) while it runs here: one run is enough
            return
        task = asyncio.create_task(self._execute(request), name=f"run {execution_id}")
        self._runs[execution_id] = task
        task.add_done_callback(lambda _: self._finished(execution_id))

    def _finished(self, execution_id: UUID) -> None:
        self._runs.pop(execution_id, None)
        for tp, offset in self._requests_of.pop(execution_id, set()):
            self._offsets.ended(tp, offset)

    async def _execute(self, request: ExecutionRequest) -> None:
        outcome = await self._runner.run(request)
        # Committable only once the run's events are durable: a crash before that re-runs it.
        await self._publisher.acked(self._publisher.emitted)
        log.info("execution %s %s", request.execution_id, "rejected" if outcome.error else "fulfilled")

    async def _commit(self, consumer: BusConsumer) -> None:
        offsets = self._offsets.to_commit()
        if not offsets:
            return
        try:
            await asyncio.wait_for(consumer.commit(offsets), _COMMIT_TIMEOUT_S)
        except (BusUnavailableError, TimeoutError) as exc:
            log.warning("could not commit run requests (kept for the next try): %s", exc or "timed out")
            return
        self._offsets.committed(offsets)

    async def _cancel_runs(self) -> None:
        runs = list(self._runs.values())
        for task in runs:
            task.cancel()
        for task in runs:
            with contextlib.suppress(asyncio.CancelledError):
                await task
