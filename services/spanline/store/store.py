"""The async face of ClickHouse: blocking client calls run on a small thread pool (never on the event
loop), each pool thread with a client of its own, since calls on one client are serialised."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from spanline.store.client import create_clickhouse_client

T = TypeVar("T")
Row = Sequence[Any]


class StoreUnavailableError(RuntimeError):
    """ClickHouse did not answer."""


# What "ClickHouse cannot serve this now" looks like to a caller (the store closed; the driver's
# connection, timeout and server-busy errors): the API answers them 503, not 500.
UNAVAILABLE_ERRORS: Final = (StoreUnavailableError, OperationalError)


class Store:
    def __init__(self, dsn: str, *, threads: int = 4) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._clients: list[Client] = []
        self._clients_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="clickhouse")
        self._closed = False

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = create_clickhouse_client(self.dsn)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    async def run(self, work: Callable[[Client], T]) -> T:
        """Run `work(client)` on a pool thread; for multi-step work that should share one client."""
        if self._closed:
            raise StoreUnavailableError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: work(self._client()))

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        result = await self.run(lambda client: client.query(sql, parameters=parameters))
        return [tuple(row) for row in result.result_rows]

    async def command(self, sql: str, parameters: dict[str, Any] | None = None) -> None:
        await self.run(lambda client: client.command(sql, parameters=parameters))

    async def insert(
        self,
        table: str,
        rows: Sequence[Row],
        column_names: Sequence[str],
        *,
        settings: dict[str, Any] | None = None,
    ) -> None:
        if not rows:
            return
        await self.run(lambda client: client.insert(table, rows, column_names=list(column_names), settings=settings))

    async def ping(self) -> None:
        try:
            rows = await self.query("SELECT 1")
        except Exception as exc:  # any driver error means "not answering" to a health probe
            raise StoreUnavailableError(f"ClickHouse at {self.dsn} does not answer: {exc}") from exc
        if rows != [(1,)]:
            raise StoreUnavailableError(f"ClickHouse at {self.dsn} answered SELECT 1 with {rows!r}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
