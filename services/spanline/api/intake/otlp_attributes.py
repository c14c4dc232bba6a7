"""OTel attribute values → JSON values, and a span's model usage from its attributes.

Usage follows the OpenTelemetry GenAI semantic conventions (`gen_ai.*`, with the names older
instrumentations and OpenLLMetry still send) and OpenInference (`llm.*`): the response model before
the requested one, the provider name before the older `gen_ai.system`; the cost comes from the price table.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, Final

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spanline.events.models import Cost, ModelUsage, ModelUsageCounts, UsageResult
from spanline.executor.pricing import PriceTable
from spanline.executor.providers.base import TokenUsage

MODEL_KEYS: Final = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
PROVIDER_KEYS: Final = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
INPUT_KEYS: Final = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_KEYS: Final = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
CACHE_READ_KEYS: Final = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_KEYS: Final = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None if kind is None else getattr(value, kind)


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: any_value(pair.value) for pair in pairs}


def _first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((attrs[key] for key in keys if attrs.get(key) not in (None, "")), None)


def _count(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> int | None:
    value = _first(attrs, keys)
    if isinstance(value, bool):
        return None
    try:
        count = int(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an instrumentation's garbage is not a count
    return count if count is None or count >= 0 else None


def model_usage(attrs: Mapping[str, Any], duration_ns: int, prices: PriceTable) -> UsageResult | None:
    """The span's one model call, or None when the span names no model and counts no tokens."""
    model = _first(attrs, MODEL_KEYS)
    counts = {
        "input": _count(attrs, INPUT_KEYS),
        "output": _count(attrs, OUTPUT_KEYS),
        "cache_read": _count(attrs, CACHE_READ_KEYS),
        "cache_write": _count(attrs, CACHE_WRITE_KEYS),
    }
    if model is None and counts["input"] is None and counts["output"] is None:
        return None
    name = str(model) if model is not None else "unknown"
    provider = _first(attrs, PROVIDER_KEYS)
    usage = ModelUsage(
        ml_model_name=name,
        provider=str(provider) if provider is not None else None,
        ml_model_usage=ModelUsageCounts(
            input_token_count=counts["input"],
            output_token_count=counts["output"],
            cache_read_input_tokens=counts["cache_read"],
            cache_creation_input_tokens=counts["cache_write"],
            compute_nanos=max(duration_ns, 0),
        ),
    )
    tokens = TokenUsage(
        counts["input"] or 0, counts["output"] or 0, counts["cache_read"] or 0, counts["cache_write"] or 0
    )
    cost = prices.cost_usd(name, tokens)
    return UsageResult(usage=[usage], cost=None if cost is None else [Cost(value=cost)])
