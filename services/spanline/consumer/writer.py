"""Writes a batch to ClickHouse in two inserts (its events as one raw RowBinary block, its model calls),
from which ClickHouse derives events, span states and per-minute usage; then re-derives the runs and
rollup buckets the batch touched (possibly for several batches at once).
Every step is idempotent, so a failed write is simply retried whole (with backoff) and a batch replayed
after a crash lands the same."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any, Final, Protocol, TypeVar

from spanline.consumer import derive
from spanline.consumer.rows import INTAKE_COLUMNS, USAGE_COLUMNS, BatchRows, BucketKey, ExecutionKey
from spanline.store.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
# Derivations of a big batch are split so each statement stays a reasonable size.
_KEYS_PER_STATEMENT: Final = 5_000


class BatchWriter(Protocol):
    async def write_events(self, rows: BatchRows) -> None: ...

    async def derive_totals(self, executions: Collection[ExecutionKey], buckets: Collection[BucketKey]) -> None: ...


StageTimer = Callable[[str, float], None]


class EventBatchWriter:
    """`write_events` lands a batch's events and calls (span states follow inside ClickHouse);
    `derive_totals` re-derives runs and rollup buckets, which the loop may do for several batches at once
    (their cost grows with the run or the minute, not with the batch)."""

    def __init__(self, store: Store, on_stage: StageTimer | None = None) -> None:
        self._store = store
        self._on_stage = on_stage

    async def write(self, rows: BatchRows) -> None:
        """Everything for one batch: inserts, spans, then the runs and buckets it touched."""
        await self.write_events(rows)
        await self.derive_totals(touched_executions(rows), rows.buckets)

    async def write_events(self, rows: BatchRows) -> None:
        """Two inserts; ClickHouse's materialized views derive the events, span states, page order and
        per-minute usage from them (schemas/clickhouse/0019_raw_intake.sql)."""
        async with self._timed("insert"):
            await asyncio.gather(
                self._insert_raw("event_intake", rows.intake, INTAKE_COLUMNS),
                self._insert_raw("usage", rows.usage, USAGE_COLUMNS),
            )

    async def derive_totals(self, executions: Collection[ExecutionKey], buckets: Collection[BucketKey]) -> None:
        """Runs are summed from their spans, so call this after `write_events` of every batch it covers."""

        async def executions_step() -> None:
            async with self._timed("derive_executions"):
                for chunk in _chunks(sorted(executions)):
                    await self._derive(derive.EXECUTIONS_SQL, derive.execution_keys(chunk))

        async def rollups_step() -> None:
            async with self._timed("derive_rollups"):
                for chunk in _chunks(sorted(buckets)):
                    await self._derive(derive.ROLLUP_SQL, derive.bucket_keys(chunk))
                # Hour rows merge minute rows, so only once all of these minute rows are written.
                hours = sorted({(partition, org, minute.replace(minute=0)) for partition, org, minute in buckets})
                for chunk in _chunks(hours):
                    await self._derive(derive.ROLLUP_HOUR_SQL, derive.bucket_keys(chunk))

        await asyncio.gather(executions_step(), rollups_step())

    @contextlib.asynccontextmanager
    async def _timed(self, stage: str) -> AsyncIterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            if self._on_stage is not None:
                self._on_stage(stage, time.perf_counter() - began)

    async def _insert_raw(self, table: str, rows: list[bytes], columns: Sequence[str]) -> None:
        if not rows:
            return
        # Joined on the store's thread: a batch's block is megabytes, not work for the event loop.
        await self._store.run(lambda client: client.raw_insert(table, list(columns), b"".join(rows), fmt="RowBinary"))

    async def _derive(self, template: str, keys: str) -> None:
        sql = template.replace("{keys}", keys)
        await self._store.run(lambda client: client.command(sql, settings=derive.QUERY_SETTINGS))


def touched_executions(rows: BatchRows) -> set[ExecutionKey]:
    """The runs whose totals a batch can change: those with a span event in it (logs change nothing)."""
    return set(rows.span_executions)


def _chunks(items: list[T]) -> list[list[T]]:
    return [items[i : i + _KEYS_PER_STATEMENT] for i in range(0, len(items), _KEYS_PER_STATEMENT)]


class GaveUpError(RuntimeError):
    """Retrying stopped because the consumer is shutting down; nothing after the last commit is lost."""


async def retry_until_done(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    stopping: asyncio.Event,
    on_retry: Callable[[], Any] | None = None,
    initial_s: float = 0.1,
    max_s: float = 5.0,
    grace_after_stop_s: float = 10.0,
) -> T:
    """Run `operation` until it succeeds, backing off exponentially with jitter. Once a stop is
    requested it keeps trying for a grace period, then gives up (the batch stays uncommitted)."""
    delay = initial_s
    stop_deadline: float | None = None
    while True:
        try:
            return await operation()
        except Exception as exc:  # any store or bus failure is retried; the batch is idempotent
            if on_retry is not None:
                on_retry()
            if stopping.is_set():
                stop_deadline = stop_deadline or time.monotonic() + grace_after_stop_s
                if time.monotonic() >= stop_deadline:
                    raise GaveUpError(f"{what} failed while stopping: {exc}") from exc
            log.warning("%s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, max_s)
