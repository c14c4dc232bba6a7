"""A provider for any OpenAI-compatible chat completions API (OpenAI, vLLM, Ollama, LiteLLM, ...).

One streamed POST `{base_url}/chat/completions` with `stream_options.include_usage`, so the server sends a
final chunk with the call's usage. Usage mapping: prompt_tokens → input_tokens, completion_tokens →
output_tokens, prompt_tokens_details.cached_tokens (or, failing that, a top-level cache_read_input_tokens)
→ cache_read_tokens, a top-level cache_creation_input_tokens (Anthropic-style) → cache_write_tokens.
A server that sends no usage gets zeros: nothing is estimated.

Errors become ProviderError: 401/403 → PROVIDER_CREDENTIALS_UNAVAILABLE, 429 → PROVIDER_QUOTA_EXCEEDED,
any other status ≥ 400, a connection error, a timeout, an `error` object in the stream, a malformed chunk
or a stream that ends before `data: [DONE]` → LLM_PROVIDER. `timeout_s` bounds connecting and each read
(an idle stream), not the whole call; the executor's own timeout bounds that.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, Final

import httpx

from spanline.executor.providers.base import Completion, OnDelta, ProviderError, TokenUsage

MAX_ERROR_BODY_CHARS: Final = 2000


class OpenAICompatibleProvider:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        name: str = "openai",
        client: httpx.AsyncClient | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Accept": "text/event-stream"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._timeout = httpx.Timeout(timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP client if this provider created it (a client passed in belongs to the caller)."""
        if self._owns_client:
            await self._client.aclose()

    async def complete(self, model: str, messages: list[dict[str, str]], on_delta: OnDelta) -> Completion:
        started = time.perf_counter_ns()
        payload = {"model": model, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        response_model = model
        async with aclosing(self._chunks(payload)) as chunks:
            async for chunk in chunks:
                if isinstance(chunk.get("model"), str) and chunk["model"]:
                    response_model = chunk["model"]
                if isinstance(chunk.get("usage"), dict):
                    usage = chunk["usage"]
                text = _delta_text(chunk)
                if text:
                    parts.append(text)
                    await on_delta(text)
        answer = "".join(parts)
        return Completion(
            text=answer,
            usage=_token_usage(usage),
            model=response_model,
            provider=self.name,
            latency_ns=time.perf_counter_ns() - started,
            input_chars=sum(len(m.get("content", "")) for m in messages),
            output_chars=len(answer),
        )

    async def _chunks(self, payload: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The stream's JSON chunks in order; every transport and protocol failure as a ProviderError.
        A separate generator so that an exception raised by `on_delta` is never mistaken for one."""
        try:
            async with self._client.stream(
                "POST", self._url, json=payload, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.status_code >= 400:
                    raise _status_error(self.name, response.status_code, await response.aread())
                async for data in _sse_data(response.aiter_lines()):
                    if data == "[DONE]":
                        return
                    yield self._decode(data)
        except httpx.TimeoutException as exc:
            raise ProviderError(
                "LLM_PROVIDER", f"{self.name}: timed out ({type(exc).__name__})", {"url": self._url}
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderError(
                "LLM_PROVIDER", f"{self.name}: {type(exc).__name__}: {exc}", {"url": self._url}
            ) from exc
        raise ProviderError("LLM_PROVIDER", f"{self.name}: stream ended before [DONE]", {"url": self._url})

    def _decode(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ProviderError(
                "LLM_PROVIDER", f"{self.name}: malformed stream chunk", {"chunk": data[:MAX_ERROR_BODY_CHARS]}
            ) from exc
        if not isinstance(chunk, dict):
            raise ProviderError("LLM_PROVIDER", f"{self.name}: stream chunk is not an object", {"chunk": data})
        if chunk.get("error"):
            raise ProviderError("LLM_PROVIDER", f"{self.name}: error in stream: {_error_text(chunk)}", {"body": chunk})
        return chunk


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each server-sent event (multi-line data joined by newlines); other fields are ignored."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def _delta_text(chunk: dict[str, Any]) -> str | None:
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else None


def _count(container: Any, key: str) -> int | None:
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _token_usage(usage: dict[str, Any] | None) -> TokenUsage:
    if usage is None:
        return TokenUsage(input_tokens=0, output_tokens=0)
    cache_read = _count(usage.get("prompt_tokens_details"), "cached_tokens")
    if cache_read is None:
        cache_read = _count(usage, "cache_read_input_tokens")
    return TokenUsage(
        input_tokens=_count(usage, "prompt_tokens") or 0,
        output_tokens=_count(usage, "completion_tokens") or 0,
        cache_read_tokens=cache_read or 0,
        cache_write_tokens=_count(usage, "cache_creation_input_tokens") or 0,
    )


def _status_code(status: int) -> str:
    if status in (401, 403):
        return "PROVIDER_CREDENTIALS_UNAVAILABLE"
    if status == 429:
        return "PROVIDER_QUOTA_EXCEEDED"
    return "LLM_PROVIDER"


def _error_text(body: Any) -> str:
    """The server's own error message: OpenAI's {"error": {"message"}}, {"error": "..."}, {"detail": ...}."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        if body.get("detail"):
            return str(body["detail"])
    return json.dumps(body)[:MAX_ERROR_BODY_CHARS]


def _status_error(provider: str, status: int, raw: bytes) -> ProviderError:
    body = raw.decode("utf-8", errors="replace")[:MAX_ERROR_BODY_CHARS]
    try:
        text = _error_text(json.loads(raw))
    except ValueError:
        text = body.strip() or "(empty body)"
    return ProviderError(
        _status_code(status),
        f"{provider} returned HTTP {status}: {text[:MAX_ERROR_BODY_CHARS]}",
        {"status": status, "body": body},
    )
