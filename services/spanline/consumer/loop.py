"""The poll loop: fetch a batch, decode it once, dead-letter what is invalid, write the rest, and only
then commit. A stop request (SIGTERM) lets the batch in hand finish and commit before the loop ends.

Batches are pipelined one deep: while batch n is written (ClickHouse work on the store's threads), batch
n+1 is fetched and decoded on the event loop. Writes and commits still happen one batch at a time, in
order, so a commit never covers a batch that is not written."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from spanline.bus.interface import BusConsumer, BusMessage
from spanline.consumer.decode import AcceptedEvent, RejectedMessage, decode_message
from spanline.consumer.dlq import DeadLetterPublisher
from spanline.consumer.metrics import ConsumerMetrics
from spanline.consumer.offsets import next_offsets
from spanline.consumer.rows import BatchRows, build_rows
from spanline.consumer.writer import BatchWriter, retry_until_done

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoopOptions:
    default_org: str
    max_event_bytes: int
    max_records: int = 10_000
    poll_ms: int = 500
    log_interval_s: float = 10.0


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    messages: list[BusMessage]
    rows: BatchRows
    accepted: int
    rejected: list[RejectedMessage]


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
                    prepared = self.prepare(batch)
                    if in_flight is not None:
                        await in_flight
                    in_flight = asyncio.create_task(self.finish(prepared))
                elif in_flight is not None and in_flight.done():
                    await in_flight
                    in_flight = None
                if time.monotonic() >= next_log:
                    next_log = time.monotonic() + self._options.log_interval_s
                    self._log_progress()
        finally:
            if in_flight is not None:
                await in_flight

    async def process(self, batch: list[BusMessage]) -> None:
        await self.finish(self.prepare(batch))

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
        return PreparedBatch(batch, build_rows(accepted), len(accepted), rejected)

    async def finish(self, prepared: PreparedBatch) -> None:
        batch, rows, rejected = prepared.messages, prepared.rows, prepared.rejected

        def count_retry() -> None:
            self.metrics.write_retries += 1

        if rejected:
            for item in rejected:
                log.warning(
                    "dead-lettering %s/%d@%d: %s", item.message.topic, item.message.partition, item.message.offset,
                    item.reason,
                )  # fmt: skip
            await retry_until_done(
                lambda: self._dead_letters.publish(rejected),
                what="publishing to the DLQ",
                stopping=self.stopping,
                on_retry=count_retry,
            )
        await retry_until_done(
            lambda: self._writer.write(rows), what="writing a batch", stopping=self.stopping, on_retry=count_retry
        )
        offsets = next_offsets(batch)
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:  # a rebalance took the partitions; the new owner re-reads, writes are idempotent
            self.metrics.commit_failures += 1
            log.warning("commit failed (%s: %s); the batch will be re-read and re-written", type(exc).__name__, exc)
        else:
            self.metrics.committed.update(offsets)
        for tp, position in offsets.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                self.metrics.lag[tp] = max(highwater - position, 0)
        self.metrics.batch_done(events=prepared.accepted, rows=rows.row_count, rejected=len(rejected))

    def _log_progress(self) -> None:
        m = self.metrics
        log.info(
            "consumer: %.0f msg/s, %d events, %d rows written, %d dead-lettered, %d retries, lag %d %s",
            m.window_rate(), m.events, m.rows_written, m.dlq, m.write_retries, m.total_lag,
            {f"{tp.partition}": lag for tp, lag in sorted(m.lag.items(), key=lambda i: i[0].partition)},
        )  # fmt: skip
