"""The poll loop: fetch a batch, decode it once, dead-letter what is invalid, write the rest, and only
then commit. A stop request (SIGTERM) lets the batch in hand finish and commit before the loop ends.

Batches are pipelined one deep: while batch n is written (ClickHouse work on the store's threads), batch
n+1 is fetched and decoded (on a worker thread, so an event loop shared with the API keeps answering).
Writes and commits still happen one batch at a time, in order.

Each batch's events and spans are written at once; the run totals and usage rollups it touched are
re-derived at most every `derive_interval_s` for all the batches since the last time (a long run costs
a whole-run aggregation per derivation, so deriving it after every batch made the consumer trail the run).
That derivation runs beside the next batches' writes (one derivation at a time, in order), so a long one
does not hold back what the detail page and streams see. The offsets of its batches are committed only
after it, so a crash in between re-reads and re-derives them: a commit never covers a batch whose derived
rows are not written.

A write refused because of the data (`write_errors.is_permanent`) is bisected: the events refused on their
own go to the DLQ with the error, the rest is written; any other failure is retried until it passes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from spanline.bus.interface import BusConsumer, BusMessage, TopicPartition
from spanline.consumer.decode import AcceptedEvent, RejectedMessage, decode_message
from spanline.consumer.dlq import DeadLetterPublisher
from spanline.consumer.metrics import ConsumerMetrics
from spanline.consumer.offsets import next_offsets
from spanline.consumer.rows import BatchRows, BucketKey, ExecutionKey, build_rows
from spanline.consumer.write_errors import describe, is_permanent, isolate_refused
from spanline.consumer.writer import BatchWriter, retry_until_done, touched_executions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoopOptions:
    default_org: str
    max_event_bytes: int
    max_records: int = 10_000
    poll_ms: int = 500
    log_interval_s: float = 10.0
    derive_interval_s: float = 0.5


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    messages: list[BusMessage]
    rows: BatchRows
    events: list[AcceptedEvent]
    rejected: list[RejectedMessage]

    @property
    def accepted(self) -> int:
        return len(self.events)


@dataclass(slots=True)
class PendingTotals:
    """Batches written whose run totals and rollups are not derived yet, and the offsets waiting on them."""

    executions: set[ExecutionKey] = field(default_factory=set)
    buckets: set[BucketKey] = field(default_factory=set)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    since: float | None = None
    events: int = 0
    rows: int = 0
    rejected: int = 0
    batches: int = 0

    def add(self, prepared: PreparedBatch) -> None:
        if self.since is None:
            self.since = time.monotonic()
        self.executions |= touched_executions(prepared.rows)
        self.buckets |= prepared.rows.buckets
        for tp, offset in next_offsets(prepared.messages).items():
            self.offsets[tp] = max(offset, self.offsets.get(tp, -1))
        self.events += prepared.accepted
        self.rows += prepared.rows.row_count
        self.rejected += len(prepared.rejected)
        self.batches += 1

    def due(self, interval_s: float) -> bool:
        return self.since is not None and time.monotonic() - self.since >= interval_s

    @property
    def empty(self) -> bool:
        return self.since is None


class ConsumerLoop:
    def __init__(
        self,
        consumer: BusConsumer,
        writer: BatchWriter,
        dead_letters: DeadLetterPublisher,
        options: LoopOptions,
        metrics: ConsumerMetrics | None = None,
    ) -> None:
        self._consumer = consumer
        self._writer = writer
        self._dead_letters = dead_letters
        self._options = options
        self.metrics = metrics or ConsumerMetrics()
        self.stopping = asyncio.Event()
        self._pending = PendingTotals()
        self._deriving: asyncio.Task[None] | None = None  # the derivation (and commit) of earlier batches

    def request_stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        next_log = time.monotonic() + self._options.log_interval_s
        in_flight: asyncio.Task[None] | None = None
        try:
            while not self.stopping.is_set():
                batch = await self._consumer.getmany(
                    max_records=self._options.max_records, timeout_ms=self._options.poll_ms
                )
                if batch:
                    prepared = await asyncio.to_thread(self.prepare, batch)
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.create_task(self.finish(prepared))
                else:
                    if in_flight is not None and in_flight.done():
                        await in_flight
                        in_flight = None
                    if in_flight is None:
                        await self.flush()  # idle: nothing more to batch the derivation with
                if time.monotonic() >= next_log:
                    next_log = time.monotonic() + self._options.log_interval_s
                    self._log_progress()
        finally:
            if in_flight is not None:
                await in_flight
            await self._derived()
        await self.flush()

    def prepare(self, batch: list[BusMessage]) -> PreparedBatch:
        accepted: list[AcceptedEvent] = []
        rejected: list[RejectedMessage] = []
        for message in batch:
            result = decode_message(
                message, default_org=self._options.default_org, max_bytes=self._options.max_event_bytes
            )
            if isinstance(result, AcceptedEvent):
                accepted.append(result)
            else:
                rejected.append(result)
        rows = build_rows(accepted)
        if rows.refused:
            refused = {id(item.message) for item in rows.refused}
            accepted = [item for item in accepted if id(item.message) not in refused]
            rejected += rows.refused
        return PreparedBatch(batch, rows, accepted, rejected)

    async def finish(self, prepared: PreparedBatch) -> None:
        """Dead-letter and write the batch; derive and commit if the pending derivation is due."""
        await self._dead_letter(prepared.rejected)
        refused = await retry_until_done(
            lambda: self._write(prepared),
            what="writing a batch",
            stopping=self.stopping,
            on_retry=self._count_retry,
        )
        if refused:
            await self._dead_letter(refused)
            refused_ids = {id(item.message) for item in refused}
            prepared = PreparedBatch(
                prepared.messages,
                build_rows(e for e in prepared.events if id(e.message) not in refused_ids),
                [e for e in prepared.events if id(e.message) not in refused_ids],
                [*prepared.rejected, *refused],
            )
        self._pending.add(prepared)
        if self.stopping.is_set() or self._pending.due(self._options.derive_interval_s):
            await self._start_derivation()

    async def _write(self, prepared: PreparedBatch) -> list[RejectedMessage]:
        """Write the batch; if the store refuses its data, bisect, write what it takes and return the rest."""
        try:
            await self._writer.write_events(prepared.rows)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            log.warning("the store refused a batch of %d events (%s); isolating", prepared.accepted, describe(exc))
        else:
            return []

        async def attempt(subset: Sequence[AcceptedEvent]) -> None:
            await self._writer.write_events(build_rows(subset))

        refused = await isolate_refused(prepared.events, attempt)
        return [RejectedMessage(item.message, "write_refused", describe(error)) for item, error in refused]

    async def _dead_letter(self, rejected: list[RejectedMessage]) -> None:
        if not rejected:
            return
        for item in rejected:
            log.warning(
                "dead-lettering %s/%d@%d: %s", item.message.topic, item.message.partition, item.message.offset,
                item.reason,
            )  # fmt: skip
        await retry_until_done(
            lambda: self._dead_letters.publish(rejected),
            what="publishing to the DLQ",
            stopping=self.stopping,
            on_retry=self._count_retry,
        )

    async def flush(self) -> None:
        """Derive the pending runs and buckets, then commit the offsets of the batches they came from."""
        await self._start_derivation()
        await self._derived()

    async def _start_derivation(self) -> None:
        """Hand the pending batches to a derivation of their own, once the one before it is done (so
        derivations, and the commits after them, stay in stream order)."""
        await self._derived()
        if self._pending.empty:
            return
        pending, self._pending = self._pending, PendingTotals()
        self._deriving = asyncio.create_task(self._derive_and_commit(pending))

    async def _derived(self) -> None:
        if self._deriving is not None:
            deriving, self._deriving = self._deriving, None
            await deriving

    async def _derive_and_commit(self, pending: PendingTotals) -> None:
        await retry_until_done(
            lambda: self._derive_totals(pending),
            what="deriving run totals and rollups",
            stopping=self.stopping,
            on_retry=self._count_retry,
        )
        try:
            await self._consumer.commit(pending.offsets)
        except Exception as exc:  # a rebalance took the partitions; the new owner re-reads, writes are idempotent
            self.metrics.commit_failures += 1
            log.warning("commit failed (%s: %s); the batch will be re-read and re-written", type(exc).__name__, exc)
        else:
            self.metrics.committed.update(pending.offsets)
        for tp, position in pending.offsets.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                self.metrics.lag[tp] = max(highwater - position, 0)
        self.metrics.batch_done(
            events=pending.events, rows=pending.rows, rejected=pending.rejected, batches=pending.batches
        )

    async def _derive_totals(self, pending: PendingTotals) -> None:
        """Derive; a key whose derivation the store refuses (no known event can cause it: `storable` keeps
        the sums in range) is skipped with an error log and counted, so it cannot hold back every other."""
        try:
            await self._writer.derive_totals(pending.executions, pending.buckets)
        except Exception as exc:
            if not is_permanent(exc):
                raise
        else:
            return
        keys: list[ExecutionKey | BucketKey] = [*pending.executions, *pending.buckets]

        async def attempt(subset: Sequence[ExecutionKey | BucketKey]) -> None:
            executions = [key for key in subset if len(key) == 2]
            buckets = [key for key in subset if len(key) == 3]
            await self._writer.derive_totals(executions, buckets)

        for key, error in await isolate_refused(keys, attempt):
            self.metrics.derive_skipped += 1
            log.error("deriving %s was refused (%s); skipped (`spanline replay` re-derives it)", key, describe(error))

    def _count_retry(self) -> None:
        self.metrics.write_retries += 1

    def _log_progress(self) -> None:
        m = self.metrics
        log.info(
            "consumer: %.0f msg/s, %d events, %d rows written, %d dead-lettered, %d retries, lag %d %s",
            m.window_rate(), m.events, m.rows_written, m.dlq, m.write_retries, m.total_lag,
            {f"{tp.partition}": lag for tp, lag in sorted(m.lag.items(), key=lambda i: i[0].partition)},
        )  # fmt: skip
