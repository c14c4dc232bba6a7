"""Serve an ASGI app with a real uvicorn server on 127.0.0.1 inside the test's event loop (chDB allows
one process per data directory, so the server shares the test process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def serve(app: Any, timeout_s: float = 30.0) -> AsyncIterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not server.started:
        if task.done():
            task.result()  # raises what stopped the server
            raise RuntimeError("uvicorn stopped before it started")
        assert asyncio.get_running_loop().time() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.01)  # readiness poll
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
