"""Consumer counters and lag, readable by the API (/metrics, /readyz) and logged every interval."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from spanline.bus.interface import TopicPartition


@dataclass
class ConsumerMetrics:
    started_at: float = field(default_factory=time.monotonic)
    events: int = 0
    rows_written: int = 0
    batches: int = 0
    dlq: int = 0
    write_retries: int = 0
    commit_failures: int = 0
    derive_skipped: int = 0  # run or rollup keys whose derivation the store refused (docs/consumer.md)
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    lag: dict[TopicPartition, int] = field(default_factory=dict)
    last_batch_at: float | None = None
    # Wall seconds spent per write stage (insert, derive_executions, derive_rollups): where a
    # batch's time goes, for the log line, /metrics and the benchmarks.
    stage_seconds: dict[str, float] = field(default_factory=dict)
    _window_start: float = field(default_factory=time.monotonic)
    _window_events: int = 0

    def batch_done(self, *, events: int, rows: int, rejected: int, batches: int = 1) -> None:
        """Count batches once they are written, derived and committed."""
        self.events += events
        self.rows_written += rows
        self.dlq += rejected
        self.batches += batches
        self._window_events += events + rejected
        self.last_batch_at = time.monotonic()

    def add_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    @property
    def total_lag(self) -> int:
        return sum(self.lag.values())

    def window_rate(self) -> float:
        """Messages per second since the previous call (the log interval), then restart the window."""
        now = time.monotonic()
        rate = self._window_events / max(now - self._window_start, 1e-9)
        self._window_start, self._window_events = now, 0
        return rate

    def snapshot(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "rows_written": self.rows_written,
            "batches": self.batches,
            "dlq": self.dlq,
            "write_retries": self.write_retries,
            "commit_failures": self.commit_failures,
            "derive_skipped": self.derive_skipped,
            "lag": {f"{tp.topic}/{tp.partition}": lag for tp, lag in sorted(self.lag.items(), key=str)},
            "total_lag": self.total_lag,
            "stage_seconds": {stage: round(seconds, 3) for stage, seconds in sorted(self.stage_seconds.items())},
            "uptime_s": round(time.monotonic() - self.started_at, 3),
        }
