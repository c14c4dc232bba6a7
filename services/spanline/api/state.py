"""What the app's lifespan builds and every request reads (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from spanline.api.auth import KeyCache
from spanline.api.live import LiveHub
from spanline.api.recent import RecentRequests
from spanline.bus.interface import Bus, BusProducer, OffsetReader
from spanline.core.config import Settings
from spanline.store.store import Store


class ConsumerCounters(Protocol):
    """What /metrics shows of a consumer running in this process (spanline dev passes its
    ConsumerMetrics): the API reads counters, it does not reach into the consumer."""

    def snapshot(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    store: Store
    bus: Bus
    key_cache: KeyCache
    producer: BusProducer
    hub: LiveHub
    recent_requests: RecentRequests
    offsets: OffsetReader  # the consumer group's committed offsets, for /metrics (one connection, kept)
    consumer_metrics: ConsumerCounters | None = None  # set when the consumer runs in this process
