"""Single flight for store reads: identical reads asked for at the same time run once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")


class SharedReads:
    """Identical reads (same key) asked for at the same time run once, and every caller still gets the
    answer of a read that started after it asked: what reading alone would give, without the duplicates.
    A burst of 1,000 clients opening one execution's stream then costs a few store queries, not 3,000
    (chDB runs one query at a time)."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[Any]] = {}
        self._queued: dict[Hashable, asyncio.Task[Any]] = {}  # starts when the running one ends

    async def read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        task = self._queued.get(key)
        if task is None:
            task = asyncio.create_task(self._run(key, self._running.get(key), read))
            self._queued[key] = task
        # Shielded: a caller that goes away does not cancel the read for the others.
        return cast(T, await asyncio.shield(task))

    async def _run(self, key: Hashable, previous: asyncio.Task[Any] | None, read: Callable[[], Awaitable[T]]) -> T:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its callers'; this read starts after it
        this = self._queued.pop(key)  # from now on, a new caller needs a read that starts later
        self._running[key] = this
        try:
            return await read()
        finally:
            if self._running.get(key) is this:
                del self._running[key]
