"""What the app's lifespan builds and every request reads (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass

from spanline.api.auth import KeyCache
from spanline.api.live import LiveHub
from spanline.api.recent import RecentRequests
from spanline.bus.interface import Bus, BusProducer
from spanline.consumer.metrics import ConsumerMetrics
from spanline.core.config import Settings
from spanline.store.store import Store


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    store: Store
    bus: Bus
    key_cache: KeyCache
    producer: BusProducer
    hub: LiveHub
    recent_requests: RecentRequests
    consumer_metrics: ConsumerMetrics | None = None  # set when the consumer runs in this process
