"""The model-provider interface the `model` node calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

OnDelta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of one model call. `input_tokens` includes cache reads and writes (OpenAI's
    prompt_tokens convention); the uncached part is input - cache_read - cache_write."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    usage: TokenUsage
    model: str
    provider: str
    latency_ns: int
    input_chars: int
    output_chars: int


class ProviderError(Exception):
    """A failed model call; `code` is the SPEC §1 error code the node is rejected with
    (LLM_PROVIDER, PROVIDER_CREDENTIALS_UNAVAILABLE, PROVIDER_QUOTA_EXCEEDED)."""

    def __init__(self, code: str, message: str, raw_data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.raw_data = raw_data


class ModelProvider(Protocol):
    name: str

    async def complete(self, model: str, messages: list[dict[str, str]], on_delta: OnDelta) -> Completion:
        """Run one chat completion, calling `on_delta` with each streamed text chunk in order."""
        ...
