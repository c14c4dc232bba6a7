"""A deterministic, offline model provider for demos and tests.

The answer depends only on (model, messages): sha256 of the model name and the messages (role and content)
seeds a byte stream that picks 20-60 words from a fixed vocabulary. The answer is streamed in chunks of
`CHUNK_WORDS` words, the chunks spaced so that the whole call takes about `latency_ms`.

Token counting (documented rule, not a real tokenizer):
- input_tokens = whitespace-separated words over the contents of all messages;
- output_tokens = words of the answer;
- cache_read_tokens = words of the `system` messages, as if the provider always held the system prompt in
  its prompt cache (stateless, so the usage of a call depends only on its messages); they are part of
  input_tokens, as TokenUsage requires;
- cache_write_tokens = 0.
Character counts are `len()` of the concatenated message contents and of the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Final

from spanline.executor.providers.base import Completion, OnDelta, TokenUsage

CHUNK_WORDS: Final = 4
MIN_WORDS: Final = 20
MAX_WORDS: Final = 60

VOCABULARY: Final = (
    "the", "a", "span", "trace", "event", "model", "token", "stream", "kafka", "partition", "offset",
    "consumer", "batch", "write", "query", "latency", "cost", "usage", "workflow", "node", "branch",
    "result", "answer", "plan", "search", "summary", "question", "context", "cache", "prompt", "with",
    "and", "then", "from", "into", "each", "every", "order", "keeps", "runs", "reads", "joins", "quickly",
    "safely", "again", "later", "first", "next", "clear", "small", "large", "steady", "because", "while",
    "before", "after", "over", "under", "along", "within", "table", "row", "column", "view",
)  # fmt: skip


def _seed_bytes(model: str, messages: list[dict[str, str]]) -> Iterator[int]:
    """An endless deterministic byte stream: sha256(seed || counter) blocks."""
    seed = json.dumps(
        [model, [[m.get("role", ""), m.get("content", "")] for m in messages]], ensure_ascii=False
    ).encode()
    counter = 0
    while True:
        yield from hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1


def local_answer(model: str, messages: list[dict[str, str]]) -> str:
    stream = _seed_bytes(model, messages)
    count = MIN_WORDS + next(stream) % (MAX_WORDS - MIN_WORDS + 1)
    words = [VOCABULARY[next(stream) % len(VOCABULARY)] for _ in range(count)]
    words[0] = words[0].capitalize()
    words[-1] += "."
    return " ".join(words)


def local_usage(messages: list[dict[str, str]], answer: str) -> TokenUsage:
    contents = [m.get("content", "") for m in messages]
    system = [m.get("content", "") for m in messages if m.get("role") == "system"]
    return TokenUsage(
        input_tokens=sum(len(c.split()) for c in contents),
        output_tokens=len(answer.split()),
        cache_read_tokens=sum(len(c.split()) for c in system),
    )


def answer_chunks(answer: str) -> list[str]:
    """Chunks of CHUNK_WORDS words that concatenate back to the answer exactly."""
    words = answer.split(" ")
    chunks = [" ".join(words[i : i + CHUNK_WORDS]) for i in range(0, len(words), CHUNK_WORDS)]
    return [chunk if i == 0 else " " + chunk for i, chunk in enumerate(chunks)]


class LocalProvider:
    def __init__(self, latency_ms: int, name: str = "local") -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        self.name = name
        self.latency_ms = latency_ms

    async def complete(self, model: str, messages: list[dict[str, str]], on_delta: OnDelta) -> Completion:
        started = time.perf_counter_ns()
        answer = local_answer(model, messages)
        chunks = answer_chunks(answer)
        pause_s = self.latency_ms / 1000 / len(chunks)
        for chunk in chunks:
            # Simulates a model producing tokens over time; product behaviour, not synchronisation.
            await asyncio.sleep(pause_s)
            await on_delta(chunk)
        return Completion(
            text=answer,
            usage=local_usage(messages, answer),
            model=model,
            provider=self.name,
            latency_ns=time.perf_counter_ns() - started,
            input_chars=sum(len(m.get("content", "")) for m in messages),
            output_chars=len(answer),
        )
