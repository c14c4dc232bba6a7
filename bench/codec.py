"""Decode+validate cost per event. msgspec parses and validates in one typed pass; orjson only parses,
so its validated path is orjson + the JSON Schema. Untyped parses are the floor.
Run: `python bench/codec.py`; writes bench/results/codec.json."""

from __future__ import annotations

import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import orjson
from jsonschema import Draft202012Validator

from spanline.events.codec import decode_event

ROOT = Path(__file__).resolve().parents[1]
LINES = [
    line
    for path in sorted((ROOT / "tests" / "data" / "events").glob("*.ndjson"))
    for line in path.read_bytes().splitlines()
]
ROUNDS = 300


def per_event_us(decode: object) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(ROUNDS):
            for line in LINES:
                decode(line)  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best / (ROUNDS * len(LINES)) * 1e6


def main() -> None:
    envelope = Draft202012Validator(json.loads((ROOT / "schemas" / "events" / "envelope.json").read_text()))
    figures = {
        "msgspec_typed_decode_us": per_event_us(decode_event),
        "orjson_loads_untyped_us": per_event_us(orjson.loads),
        "msgspec_untyped_decode_us": per_event_us(msgspec.json.decode),
        "orjson_plus_jsonschema_us": per_event_us(lambda line: envelope.validate(orjson.loads(line))),
    }
    result = {
        "date": datetime.now(UTC).isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}",
        "versions": {"msgspec": msgspec.__version__, "orjson": orjson.__version__},
        "events": len(LINES),
        **{key: round(value, 3) for key, value in figures.items()},
        "msgspec_typed_over_orjson_untyped": round(
            figures["msgspec_typed_decode_us"] / figures["orjson_loads_untyped_us"], 2
        ),
        "orjson_jsonschema_over_msgspec_typed": round(
            figures["orjson_plus_jsonschema_us"] / figures["msgspec_typed_decode_us"], 1
        ),
    }
    (ROOT / "bench" / "results" / "codec.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
