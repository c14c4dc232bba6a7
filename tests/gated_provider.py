"""A model provider for tests that need a run held mid-answer: LocalProvider's answers, but after the
first chunk a call waits for `gate` (open by default), and `answering` is set once a call is waiting."""

from __future__ import annotations

import asyncio

from spanline.executor.providers.base import Completion, OnDelta
from spanline.executor.providers.local import LocalProvider


class GatedProvider:
    def __init__(self, latency_ms: int, name: str = "local") -> None:
        self.name = name
        self._inner = LocalProvider(latency_ms, name)
        self.gate = asyncio.Event()
        self.gate.set()
        self.answering = asyncio.Event()

    async def complete(self, model: str, messages: list[dict[str, str]], on_delta: OnDelta) -> Completion:
        first = True

        async def delta(chunk: str) -> None:
            nonlocal first
            await on_delta(chunk)
            if first:
                first = False
                self.answering.set()
                await self.gate.wait()

        return await self._inner.complete(model, messages, delta)
