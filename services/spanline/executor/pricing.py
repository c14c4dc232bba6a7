"""The per-model price table (USD per million tokens) and the cost of one model call.

cost = (max(input - cache_read - cache_write, 0) * input_price + cache_read * cache_read_price
        + cache_write * cache_write_price + output * output_price) / 1e6

Costs are plain floats, not rounded: a sum of a few products of exact decimal prices, good to ~1e-15
relative, far below the cent. A model missing from the table has no cost (None), never zero. A name with
a date or -latest suffix (gpt-4o-mini-2024-07-18, claude-3-5-haiku-20241022) falls back to the undated
name, because OpenAI-compatible servers answer with the dated model name.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from spanline.executor.providers.base import TokenUsage

SHIPPED_PRICE_TABLE: Final = Path(__file__).with_name("prices.toml")
PRICE_FIELDS: Final = ("input", "output", "cache_read", "cache_write")
_VERSION_SUFFIX: Final = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


class PriceTableError(ValueError):
    """A price table that cannot be read or has a bad entry; the message names the file (and model)."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float
    output: float
    cache_read: float
    cache_write: float


@dataclass(frozen=True, slots=True)
class PriceTable:
    prices: Mapping[str, ModelPrice]
    source: Path

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        source = path if path is not None else SHIPPED_PRICE_TABLE
        try:
            with source.open("rb") as file:
                document = tomllib.load(file)
        except OSError as exc:
            raise PriceTableError(f"price table {source}: cannot read: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PriceTableError(f"price table {source}: not valid TOML: {exc}") from exc
        return cls({model: _model_price(source, model, entry) for model, entry in document.items()}, source)

    def price(self, model: str) -> ModelPrice | None:
        found = self.prices.get(model)
        if found is None:
            found = self.prices.get(_VERSION_SUFFIX.sub("", model))
        return found

    def cost_usd(self, model: str, usage: TokenUsage) -> float | None:
        price = self.price(model)
        if price is None:
            return None
        uncached = max(usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens, 0)
        micro_usd = (
            uncached * price.input
            + usage.cache_read_tokens * price.cache_read
            + usage.cache_write_tokens * price.cache_write
            + usage.output_tokens * price.output
        )
        return micro_usd / 1e6


def _model_price(source: Path, model: str, entry: Any) -> ModelPrice:
    where = f"price table {source}, model {model!r}"
    if not isinstance(entry, dict):
        raise PriceTableError(f"{where}: expected a table of {', '.join(PRICE_FIELDS)}")
    missing = [field for field in PRICE_FIELDS if field not in entry]
    unknown = sorted(set(entry) - set(PRICE_FIELDS))
    if missing or unknown:
        raise PriceTableError(f"{where}: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}")
    values: dict[str, float] = {}
    for field in PRICE_FIELDS:
        value = entry[field]
        if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
            raise PriceTableError(f"{where}: {field} must be a number >= 0 (USD per million tokens), got {value!r}")
        values[field] = float(value)
    return ModelPrice(**values)
