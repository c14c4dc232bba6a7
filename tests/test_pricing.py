"""The price table: hand-computed costs, unknown models, custom tables, and clear errors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from spanline.core.config import Settings
from spanline.executor.pricing import SHIPPED_PRICE_TABLE, PriceTable, PriceTableError
from spanline.executor.providers.base import TokenUsage

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_EVENTS = sorted((PROJECT_ROOT / "tests" / "data" / "events").glob("*.ndjson"))

CUSTOM = """
["m"]
input = 1.0
output = 2.0
cache_read = 0.5
cache_write = 4
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    return path


def test_each_token_kind_is_priced_separately(tmp_path: Path) -> None:
    table = PriceTable.load(write(tmp_path, CUSTOM))
    usage = TokenUsage(input_tokens=1000, output_tokens=50, cache_read_tokens=200, cache_write_tokens=100)
    # uncached 700 x 1.0 + cache read 200 x 0.5 + cache write 100 x 4 + output 50 x 2.0 = 1300 per million
    assert table.cost_usd("m", usage) == pytest.approx(1300 / 1e6, rel=1e-12)
    assert table.cost_usd("m", TokenUsage(0, 1)) == pytest.approx(2.0 / 1e6, rel=1e-12)
    assert table.cost_usd("m", TokenUsage(1, 0, cache_read_tokens=1)) == pytest.approx(0.5 / 1e6, rel=1e-12)
    assert table.cost_usd("m", TokenUsage(1, 0, cache_write_tokens=1)) == pytest.approx(4.0 / 1e6, rel=1e-12)
    assert table.cost_usd("m", TokenUsage(0, 0)) == 0.0


def test_uncached_input_never_goes_below_zero(tmp_path: Path) -> None:
    table = PriceTable.load(write(tmp_path, CUSTOM))
    # a server that reports cache reads outside prompt_tokens: only the cache reads are charged
    assert table.cost_usd("m", TokenUsage(10, 0, cache_read_tokens=30)) == pytest.approx(15 / 1e6, rel=1e-12)


def test_shipped_table_prices_gpt_4o_mini() -> None:
    table = PriceTable.load()
    assert table.source == SHIPPED_PRICE_TABLE
    usage = TokenUsage(input_tokens=812, output_tokens=96, cache_read_tokens=512)
    # 300 x 0.15 + 512 x 0.075 + 96 x 0.60 = 141 per million (SPEC §1's example)
    assert table.cost_usd("gpt-4o-mini", usage) == pytest.approx(0.000141, rel=1e-12)
    for model in ("gpt-4o", "gpt-4o-mini", "claude-3-5-haiku", "claude-3-5-sonnet"):
        assert table.price(model) is not None, model


def _example_usages() -> list[tuple[dict[str, Any], float]]:
    found = []
    for path in EXAMPLE_EVENTS:
        for line in path.read_text().splitlines():
            result = (json.loads(line).get("body") or {}).get("usage_result")
            if result and len(result["usage"]) == 1:
                found.append((result["usage"][0], result["cost"][0]["value"]))
    return found


def test_shipped_table_reproduces_the_example_events_costs() -> None:
    examples = _example_usages()
    assert examples, "no usage in the example events"
    table = PriceTable.load()
    for entry, cost in examples:
        counts = entry["ml_model_usage"]
        usage = TokenUsage(
            counts["input_token_count"],
            counts["output_token_count"],
            counts.get("cache_read_input_tokens", 0),
            counts.get("cache_creation_input_tokens", 0),
        )
        assert table.cost_usd(entry["ml_model_name"], usage) == pytest.approx(cost, rel=1e-9), entry


def test_unknown_model_has_no_cost() -> None:
    table = PriceTable.load()
    assert table.cost_usd("no-such-model", TokenUsage(10, 10)) is None
    assert table.cost_usd("gpt-4o-mini-audio-preview", TokenUsage(10, 10)) is None


def test_dated_model_names_fall_back_to_the_undated_price() -> None:
    table = PriceTable.load()
    usage = TokenUsage(1000, 100, 200)
    for dated, base in [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ]:
        assert table.cost_usd(dated, usage) == table.cost_usd(base, usage) is not None


def test_custom_table_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = write(tmp_path, '["gpt-4o-mini"]\ninput = 10\noutput = 20\ncache_read = 5\ncache_write = 10\n')
    table = PriceTable.load(path)
    assert table.source == path
    assert table.cost_usd("gpt-4o-mini", TokenUsage(100, 10)) == pytest.approx((100 * 10 + 10 * 20) / 1e6)
    assert table.cost_usd("gpt-4o", TokenUsage(100, 10)) is None


def test_settings_price_table_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, CUSTOM)
    monkeypatch.setenv("SPANLINE_PRICE_TABLE", str(path))
    table = PriceTable.load(Settings().price_table)
    assert set(table.prices) == {"m"}


VALID_ENTRY = '["m"]\ninput = 1\noutput = 2\ncache_read = 0.5\ncache_write = 1\n'


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (VALID_ENTRY.replace("cache_write = 1\n", ""), ["'m'", "missing ['cache_write']"]),
        (VALID_ENTRY + "cached = 1\n", ["'m'", "unknown ['cached']"]),
        (VALID_ENTRY.replace("input = 1", "input = -1"), ["'m'", "input must be a number"]),
        (VALID_ENTRY.replace("input = 1", 'input = "1"'), ["'m'", "input must be a number"]),
        (VALID_ENTRY.replace("output = 2", "output = nan"), ["'m'", "output must be a number"]),
        (VALID_ENTRY.replace("output = 2", "output = true"), ["'m'", "output must be a number"]),
        ("m = 3\n", ["'m'", "expected a table"]),
        ('["m"\ninput = 1\n', ["not valid TOML"]),
    ],
)
def test_bad_table_names_the_file_and_model(tmp_path: Path, text: str, words: list[str]) -> None:
    assert PriceTable.load(write(tmp_path, VALID_ENTRY)).price("m") is not None  # the cases break a good entry
    path = write(tmp_path, text)
    with pytest.raises(PriceTableError) as caught:
        PriceTable.load(path)
    assert str(path) in str(caught.value)
    for word in words:
        assert word in str(caught.value)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PriceTableError, match="cannot read") as caught:
        PriceTable.load(tmp_path / "absent.toml")
    assert str(tmp_path / "absent.toml") in str(caught.value)


def test_price_table_is_package_data() -> None:
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as file:
        package_data = tomllib.load(file)["tool"]["setuptools"]["package-data"]["spanline"]
    assert "executor/prices.toml" in package_data
    assert SHIPPED_PRICE_TABLE == PROJECT_ROOT / "services" / "spanline" / "executor" / "prices.toml"
