"""Writes a batch's rows to ClickHouse in a few large column-oriented inserts, then re-derives the
spans, runs and rollup buckets the batch touched. Every step is idempotent, so a failed write is simply
retried whole (with backoff) and a batch replayed after a crash lands the same."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, Protocol, TypeVar

from spanline.consumer import derive
from spanline.consumer.rows import (
    EVENT_COLUMNS,
    SPAN_EVENT_COLUMNS,
    USAGE_BY_MINUTE_COLUMNS,
    USAGE_COLUMNS,
    BatchRows,
    Row,
)
from spanline.store.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
# Derivations of a big batch are split so each statement stays a reasonable size.
_KEYS_PER_STATEMENT: Final = 5_000


class BatchWriter(Protocol):
    async def write(self, rows: BatchRows) -> None: ...


class EventBatchWriter:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def write(self, rows: BatchRows) -> None:
        await asyncio.gather(
            self._insert("events", rows.events, EVENT_COLUMNS),
            self._insert("span_events", rows.span_events, SPAN_EVENT_COLUMNS),
            self._insert("usage", rows.usage, USAGE_COLUMNS),
            self._insert("usage_by_minute", rows.usage_by_minute, USAGE_BY_MINUTE_COLUMNS),
        )
        # Spans first: a run's totals are summed from its spans.
        for chunk in _chunks(sorted(rows.spans)):
            await self._derive(derive.SPANS_SQL, derive.span_keys(chunk))
        executions = sorted({(org, execution_id) for org, execution_id, _ in rows.spans})
        await asyncio.gather(
            *(self._derive(derive.EXECUTIONS_SQL, derive.execution_keys(c)) for c in _chunks(executions)),
            *(self._derive(derive.ROLLUP_SQL, derive.bucket_keys(c)) for c in _chunks(sorted(rows.buckets))),
        )
        # Hour rollups merge minute rows, so only once all of this batch's minute rows are written.
        hours = sorted({(partition, org, minute.replace(minute=0)) for partition, org, minute in rows.buckets})
        await asyncio.gather(*(self._derive(derive.ROLLUP_HOUR_SQL, derive.bucket_keys(c)) for c in _chunks(hours)))

    async def _insert(self, table: str, rows: list[Row], columns: Sequence[str]) -> None:
        if not rows:
            return
        data = [list(column) for column in zip(*rows, strict=True)]
        await self._store.run(
            lambda client: client.insert(table, data, column_names=list(columns), column_oriented=True)
        )

    async def _derive(self, template: str, keys: str) -> None:
        sql = template.replace("{keys}", keys)
        await self._store.run(lambda client: client.command(sql, settings=derive.QUERY_SETTINGS))


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
