"""Model providers: the deterministic local one, and the OpenAI-compatible one against a real HTTP stub."""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from spanline.core.config import Settings
from spanline.executor.providers.base import Completion, ProviderError, TokenUsage
from spanline.executor.providers.local import CHUNK_WORDS, VOCABULARY, LocalProvider
from spanline.executor.providers.openai_compat import MAX_ERROR_BODY_CHARS, OpenAICompatibleProvider
from spanline.executor.providers.registry import build_providers
from tests.openai_stub import RESPONSE_MODEL_SUFFIX, STUB_DELTAS, StubServer

USER = [{"role": "user", "content": "Summarize the partition log"}]


class Deltas:
    def __init__(self) -> None:
        self.chunks: list[str] = []

    async def __call__(self, text: str) -> None:
        self.chunks.append(text)


async def complete(provider: LocalProvider | OpenAICompatibleProvider, model: str, messages: list[dict[str, str]]
                   ) -> tuple[Completion, list[str]]:  # fmt: skip
    deltas = Deltas()
    completion = await provider.complete(model, messages, deltas)
    return completion, deltas.chunks


# --- local provider ---------------------------------------------------------------------------------------


async def test_local_same_prompt_same_answer_and_usage() -> None:
    first, _ = await complete(LocalProvider(0), "gpt-4o-mini", USER)
    second, _ = await complete(LocalProvider(0, name="other"), "gpt-4o-mini", [dict(m) for m in USER])
    assert first.text == second.text
    assert first.usage == second.usage
    assert (first.provider, second.provider) == ("local", "other")


async def test_local_answer_depends_on_prompt_and_model() -> None:
    base, _ = await complete(LocalProvider(0), "gpt-4o-mini", USER)
    other_prompt, _ = await complete(LocalProvider(0), "gpt-4o-mini", [{"role": "user", "content": "Plan"}])
    other_model, _ = await complete(LocalProvider(0), "claude-3-5-haiku", USER)
    other_role, _ = await complete(LocalProvider(0), "gpt-4o-mini", [{"role": "system", "content": USER[0]["content"]}])
    assert len({base.text, other_prompt.text, other_model.text, other_role.text}) == 4
    assert base.model == "gpt-4o-mini" and other_model.model == "claude-3-5-haiku"


async def test_local_answers_are_20_to_60_vocabulary_words() -> None:
    vocabulary = set(VOCABULARY)
    lengths = set()
    for i in range(60):
        completion, _ = await complete(LocalProvider(0), "m", [{"role": "user", "content": f"question {i}"}])
        words = completion.text.split()
        lengths.add(len(words))
        assert 20 <= len(words) <= 60
        assert {w.lower().rstrip(".") for w in words} <= vocabulary
        assert completion.text.endswith(".") and completion.text[0].isupper()
    assert len(lengths) > 5  # lengths vary with the prompt


async def test_local_token_counting_rule() -> None:
    messages = [
        {"role": "system", "content": "You are  terse."},
        {"role": "user", "content": "one two\nthree\tfour"},
        {"role": "assistant", "content": ""},
    ]
    completion, _ = await complete(LocalProvider(0), "gpt-4o-mini", messages)
    assert completion.usage == TokenUsage(
        input_tokens=3 + 4, output_tokens=len(completion.text.split()), cache_read_tokens=3, cache_write_tokens=0
    )
    assert completion.input_chars == len("You are  terse.") + len("one two\nthree\tfour")
    assert completion.output_chars == len(completion.text)


async def test_local_streams_several_chunks_that_concatenate_to_the_text() -> None:
    completion, chunks = await complete(LocalProvider(0), "gpt-4o-mini", USER)
    assert "".join(chunks) == completion.text
    assert len(chunks) == math.ceil(len(completion.text.split()) / CHUNK_WORDS) >= 5
    assert all(chunk.strip() for chunk in chunks)


async def test_local_latency_spreads_over_the_call() -> None:
    completion, _ = await complete(LocalProvider(120), "gpt-4o-mini", USER)
    assert completion.latency_ns >= 0.9 * 120_000_000
    quick, _ = await complete(LocalProvider(0), "gpt-4o-mini", USER)
    assert quick.latency_ns < completion.latency_ns


def test_local_rejects_negative_latency() -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        LocalProvider(-1)


# --- OpenAI-compatible provider against the stub --------------------------------------------------------------


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def openai(stub_server: StubServer, http_client: httpx.AsyncClient) -> OpenAICompatibleProvider:
    stub_server.stub.requests.clear()
    return OpenAICompatibleProvider(stub_server.base_url, "sk-test", client=http_client, timeout_s=5)


async def test_openai_streams_deltas_in_order_with_usage_and_model(
    openai: OpenAICompatibleProvider, stub_server: StubServer
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    completion, chunks = await complete(openai, "stub-normal", messages)
    assert chunks == STUB_DELTAS
    assert completion.text == "".join(STUB_DELTAS)
    assert completion.usage == TokenUsage(input_tokens=812, output_tokens=96, cache_read_tokens=512)
    assert completion.model == "stub-normal" + RESPONSE_MODEL_SUFFIX
    assert completion.provider == "openai"
    assert completion.input_chars == len("Be brief.") + len(USER[0]["content"])
    assert completion.output_chars == len(completion.text)
    assert completion.latency_ns > 0
    [request] = stub_server.stub.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.body == {
        "model": "stub-normal",
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_openai_anthropic_style_cache_counts(openai: OpenAICompatibleProvider) -> None:
    completion, _ = await complete(openai, "stub-anthropic-cache", USER)
    assert completion.usage == TokenUsage(300, 5, cache_read_tokens=100, cache_write_tokens=50)


async def test_openai_without_usage_counts_zero(openai: OpenAICompatibleProvider) -> None:
    completion, chunks = await complete(openai, "stub-no-usage", USER)
    assert chunks == STUB_DELTAS
    assert completion.usage == TokenUsage(0, 0)


@pytest.mark.parametrize(
    ("model", "code", "status"),
    [
        ("stub-500", "LLM_PROVIDER", 500),
        ("stub-404", "LLM_PROVIDER", 404),
        ("stub-401", "PROVIDER_CREDENTIALS_UNAVAILABLE", 401),
        ("stub-403", "PROVIDER_CREDENTIALS_UNAVAILABLE", 403),
        ("stub-429", "PROVIDER_QUOTA_EXCEEDED", 429),
    ],
)
async def test_openai_http_status_maps_to_error_code(
    openai: OpenAICompatibleProvider, model: str, code: str, status: int
) -> None:
    deltas = Deltas()
    with pytest.raises(ProviderError) as caught:
        await openai.complete(model, USER, deltas)
    error = caught.value
    assert error.code == code
    assert str(status) in error.message and f"stub error {status}" in error.message
    assert error.raw_data is not None and error.raw_data["status"] == status
    assert f"stub error {status}" in error.raw_data["body"]
    assert deltas.chunks == []


async def test_openai_plain_text_error_body(openai: OpenAICompatibleProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await complete(openai, "stub-502-text", USER)
    assert caught.value.code == "LLM_PROVIDER"
    assert caught.value.message == "openai returned HTTP 502: Bad Gateway from upstream"


async def test_openai_error_body_is_truncated(openai: OpenAICompatibleProvider) -> None:
    with pytest.raises(ProviderError) as caught:
        await complete(openai, "stub-400-long", USER)
    assert caught.value.code == "LLM_PROVIDER"
    assert caught.value.raw_data is not None
    assert len(caught.value.raw_data["body"]) == MAX_ERROR_BODY_CHARS
    assert len(caught.value.message) < 2 * MAX_ERROR_BODY_CHARS + 100


@pytest.mark.parametrize(
    ("model", "words"), [("stub-truncated", r"before \[DONE\]"), ("stub-stream-error", "overloaded")]
)
async def test_openai_broken_stream_is_a_provider_error(
    openai: OpenAICompatibleProvider, model: str, words: str
) -> None:
    with pytest.raises(ProviderError, match=words) as caught:
        await complete(openai, model, USER)
    assert caught.value.code == "LLM_PROVIDER"


async def test_openai_stalled_stream_times_out(stub_server: StubServer, http_client: httpx.AsyncClient) -> None:
    provider = OpenAICompatibleProvider(stub_server.base_url, "sk-test", client=http_client, timeout_s=0.3)
    deltas = Deltas()
    with pytest.raises(ProviderError, match="timed out") as caught:
        await provider.complete("stub-stall", USER, deltas)
    assert caught.value.code == "LLM_PROVIDER"
    assert deltas.chunks == STUB_DELTAS[:1]  # what arrived before the stall was streamed


async def test_openai_connection_refused_is_llm_provider() -> None:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        provider = OpenAICompatibleProvider(f"http://127.0.0.1:{port}/v1", None)
        try:
            with pytest.raises(ProviderError, match="ConnectError") as caught:
                await complete(provider, "stub-normal", USER)
        finally:
            await provider.aclose()
    assert caught.value.code == "LLM_PROVIDER"


async def test_openai_on_delta_failure_is_not_a_provider_error(openai: OpenAICompatibleProvider) -> None:
    class Stop(Exception):
        pass

    async def failing(text: str) -> None:
        raise Stop(text)

    with pytest.raises(Stop):
        await openai.complete("stub-normal", USER, failing)


async def test_openai_without_api_key_sends_no_authorization(
    stub_server: StubServer, http_client: httpx.AsyncClient
) -> None:
    stub_server.stub.requests.clear()
    provider = OpenAICompatibleProvider(stub_server.base_url + "/", None, client=http_client)
    await complete(provider, "stub-normal", USER)
    [request] = stub_server.stub.requests
    assert "authorization" not in request.headers
    assert request.path == "/v1/chat/completions"


# --- registry ---------------------------------------------------------------------------------------------


def test_registry_without_openai_settings_has_only_local() -> None:
    providers = build_providers(Settings(openai_base_url=None, local_provider_latency_ms=7))
    assert list(providers) == ["local"]
    local = providers["local"]
    assert isinstance(local, LocalProvider) and local.latency_ms == 7


async def test_registry_builds_openai_from_settings(stub_server: StubServer, http_client: httpx.AsyncClient) -> None:
    stub_server.stub.requests.clear()
    settings = Settings(openai_base_url=stub_server.base_url, openai_api_key=SecretStr("sk-from-settings"))
    providers = build_providers(settings, client=http_client)
    assert sorted(providers) == ["local", "openai"]
    completion = await providers["openai"].complete("stub-normal", USER, Deltas())
    assert completion.provider == "openai"
    assert stub_server.stub.requests[0].headers["authorization"] == "Bearer sk-from-settings"
