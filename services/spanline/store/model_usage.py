"""One execution's model usage per (model, provider), from `usage FINAL`: the execution detail's
usage_results and the Interactly run's token and latency figures both read it. Subworkflows share the
root execution id, so their calls are included."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from spanline.store.store import Store

_USAGE_BY_MODEL_SQL: Final = """
SELECT model, provider, sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
       sum(input_chars), sum(output_chars), sum(compute_nanos), count(), sum(cost_usd)
FROM usage FINAL
WHERE org = {org:String} AND execution_id = {execution_id:UUID} {models_only}
GROUP BY model, provider
ORDER BY model, provider
"""
# A usage_result that reports a cost and no call is stored as one entry with no model.
_MODELS_ONLY: Final = "AND model != ''"


@dataclass(frozen=True, slots=True)
class ModelUsageRow:
    model: str  # '' for the cost-only entries
    provider: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    input_chars: int
    output_chars: int
    compute_nanos: int
    calls: int
    cost_usd: Decimal


async def usage_by_model(
    store: Store, org: str, execution_id: UUID, *, with_cost_only_entries: bool = False
) -> list[ModelUsageRow]:
    """The execution's usage per (model, provider), ordered so; model calls only unless asked for the
    cost-only entries too (the detail's cost counts them; call counts and latencies must not)."""
    sql = _USAGE_BY_MODEL_SQL.replace("{models_only}", "" if with_cost_only_entries else _MODELS_ONLY)
    rows = await store.query(sql, {"org": org, "execution_id": execution_id})
    return [_row(row) for row in rows]


def _row(row: tuple[Any, ...]) -> ModelUsageRow:
    (model, provider, inputs, outputs, cache_read, cache_write, input_chars, output_chars, nanos, calls,
     cost) = row  # fmt: skip
    return ModelUsageRow(
        str(model), str(provider), int(inputs), int(outputs), int(cache_read), int(cache_write), int(input_chars),
        int(output_chars), int(nanos), int(calls), Decimal(cost),
    )  # fmt: skip
