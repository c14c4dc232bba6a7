"""A small OpenAI-compatible chat completions server for provider tests, run by uvicorn in a thread.

The requested model name picks the behaviour (see `MODES`); every request is recorded so tests can assert
the headers and body the provider sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.threaded_server import ThreadedServer

STUB_DELTAS = ["Kafka ", "keeps ", "order ", "per ", "partition."]
STUB_USAGE = {
    "prompt_tokens": 812,
    "completion_tokens": 96,
    "total_tokens": 908,
    "prompt_tokens_details": {"cached_tokens": 512},
}
RESPONSE_MODEL_SUFFIX = "-2024-07-18"
STALL_SECONDS = 30.0
MODES = (
    "stub-normal",  # deltas, then a usage chunk with cached tokens, then [DONE]; model name gets a date
    "stub-anthropic-cache",  # usage with top-level cache_read/cache_creation_input_tokens
    "stub-no-usage",  # no usage chunk at all
    "stub-truncated",  # deltas but the stream ends without [DONE]
    "stub-stream-error",  # one delta, then an error object in the stream
    "stub-stall",  # one delta, then nothing for STALL_SECONDS (client read timeout)
    "stub-500",
    "stub-502-text",  # plain-text error body
    "stub-400-long",  # JSON error with a very long message
    "stub-401",
    "stub-403",
    "stub-404",
    "stub-429",
)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class OpenAIStub:
    requests: list[RecordedRequest] = field(default_factory=list)

    async def chat_completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(RecordedRequest(request.url.path, dict(request.headers), body))
        model = str(body.get("model", ""))
        if model == "stub-502-text":
            return PlainTextResponse("Bad Gateway from upstream", status_code=502)
        if model == "stub-400-long":
            return JSONResponse({"error": {"message": "x" * 10_000, "type": "invalid_request_error"}}, 400)
        status = model.removeprefix("stub-")
        if status.isdigit():
            message = f"stub error {status}"
            return JSONResponse({"error": {"message": message, "type": "stub", "code": status}}, int(status))
        return StreamingResponse(self._events(model), media_type="text/event-stream")

    async def _events(self, model: str) -> AsyncIterator[str]:
        deltas = STUB_DELTAS[:1] if model in ("stub-stall", "stub-stream-error") else STUB_DELTAS
        yield _sse(_chunk(model + RESPONSE_MODEL_SUFFIX, {"role": "assistant", "content": ""}))
        for text in deltas:
            yield _sse(_chunk(model + RESPONSE_MODEL_SUFFIX, {"content": text}))
        if model == "stub-stall":
            await asyncio.sleep(STALL_SECONDS)  # a server that goes quiet mid-stream
        if model == "stub-stream-error":
            yield _sse({"error": {"message": "overloaded mid-stream", "type": "server_error"}})
            return
        yield _sse(_chunk(model + RESPONSE_MODEL_SUFFIX, {}, finish_reason="stop"))
        if model == "stub-normal":
            yield _sse({"id": "c1", "object": "chat.completion.chunk", "model": model + RESPONSE_MODEL_SUFFIX,
                        "choices": [], "usage": STUB_USAGE})  # fmt: skip
        if model == "stub-anthropic-cache":
            usage = {"prompt_tokens": 300, "completion_tokens": 5, "cache_read_input_tokens": 100,
                     "cache_creation_input_tokens": 50}  # fmt: skip
            yield _sse({"id": "c1", "model": model, "choices": None, "usage": usage})
        if model != "stub-truncated":
            yield "data: [DONE]\n\n"


def _chunk(model: str, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        "usage": None,
    }


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"


class StubServer:
    """The stub served by uvicorn on 127.0.0.1 in a thread."""

    def __init__(self) -> None:
        self.stub = OpenAIStub()
        app = Starlette(routes=[Route("/v1/chat/completions", self.stub.chat_completions, methods=["POST"])])
        self._server = ThreadedServer(app, lifespan="off")

    @property
    def base_url(self) -> str:
        return f"{self._server.base_url}/v1"

    def start(self, timeout_s: float = 10.0) -> None:
        self._server.start(timeout_s)

    def stop(self) -> None:
        self._server.stop()
