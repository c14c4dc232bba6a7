"""`model` nodes: render the prompt, call the provider (streaming deltas), report usage and cost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from spanline.events.models import Cost, ModelUsage, ModelUsageCounts, UsageResult
from spanline.executor.errors import ExecutionFailure
from spanline.executor.nodes.template import render
from spanline.executor.providers.base import Completion, ModelProvider, OnDelta, ProviderError, TokenUsage


class CostModel(Protocol):
    def cost_usd(self, model: str, usage: TokenUsage) -> float | None: ...


@dataclass(frozen=True, slots=True)
class ModelOutcome:
    outputs: dict[str, Any]
    usage_result: UsageResult


def usage_result_of(completion: Completion, prices: CostModel) -> UsageResult:
    usage = completion.usage
    cost = prices.cost_usd(completion.model, usage)
    return UsageResult(
        usage=[
            ModelUsage(
                ml_model_name=completion.model,
                provider=completion.provider,
                ml_model_usage=ModelUsageCounts(
                    input_token_count=usage.input_tokens,
                    output_token_count=usage.output_tokens,
                    cache_read_input_tokens=usage.cache_read_tokens,
                    cache_creation_input_tokens=usage.cache_write_tokens,
                    input_char_count=completion.input_chars,
                    output_char_count=completion.output_chars,
                    compute_nanos=completion.latency_ns,
                ),
            )
        ],
        cost=[Cost(value=cost, unit="USD")] if cost is not None else None,
    )


async def run_model(
    config: dict[str, Any],
    inputs: dict[str, Any],
    providers: Mapping[str, ModelProvider],
    prices: CostModel,
    on_delta: OnDelta,
) -> ModelOutcome:
    provider_name = str(config.get("provider", "local"))
    provider = providers.get(provider_name)
    if provider is None:
        raise ExecutionFailure(
            "PROVIDER_CREDENTIALS_UNAVAILABLE", f"provider {provider_name!r} is not configured on this executor"
        )
    messages = []
    if config.get("system"):
        messages.append({"role": "system", "content": render(str(config["system"]), inputs)})
    messages.append({"role": "user", "content": render(str(config["prompt"]), inputs)})
    try:
        completion = await provider.complete(str(config["model"]), messages, on_delta)
    except ProviderError as exc:
        raise ExecutionFailure(exc.code, exc.message, raw_data=exc.raw_data) from exc
    return ModelOutcome({"output": completion.text}, usage_result_of(completion, prices))
