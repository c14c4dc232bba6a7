"""Compare a live JSON answer with a seed page's example: the same key tree and the same JSON type at
every key (dicts recursively, lists by their first element). Exceptions are named by path, so each one
is a documented choice: `$` is the root, `.key` a dict key, `[]` a list's first element. A seed's null
shows no type (any value matches it) and a seed's {} is a map with no fixed keys (any object matches)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"  # JSON has one number type: the seed's 0 and spanline's 0.0 agree
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {value!r}")


def shape_differences(
    seed: Any,
    live: Any,
    *,
    nullable: Collection[str] = (),
    may_be_empty: Collection[str] = (),
    free_form: Collection[str] = (),
    optional: Collection[str] = (),
    extra: Collection[str] = (),
    path: str = "$",
) -> list[str]:
    """Every place where `live` departs from `seed`'s shape. `nullable` paths may be null where the seed
    shows a value (spanline's neutral value), `may_be_empty` lists may be [] (nothing to compare them by),
    `free_form` paths hold any object (data whose keys depend on the workflow, like a step's outputs),
    `optional` keys may be missing (an event's optional fields, SPEC §1's `?`), `extra` keys are spanline's
    documented additions the seed does not have (docs/read_api.md)."""
    rules: dict[str, Collection[str]] = {
        "nullable": nullable, "may_be_empty": may_be_empty, "free_form": free_form, "optional": optional,
        "extra": extra,
    }  # fmt: skip
    if path in free_form:
        return [] if json_type(live) in ("object", "null") else [f"{path}: {json_type(live)}, want an object"]
    if (live is None and path in nullable) or seed is None:
        return []
    want, got = json_type(seed), json_type(live)
    if want != got:
        return [f"{path}: {got}, the seed has {want}"]
    if isinstance(seed, dict) and seed:
        problems = [f"{path}.{key}: missing" for key in seed if key not in live and f"{path}.{key}" not in optional]
        problems += [
            f"{path}.{key}: not in the seed" for key in live if key not in seed and f"{path}.{key}" not in extra
        ]
        for key in seed.keys() & live.keys():
            problems += shape_differences(seed[key], live[key], **rules, path=f"{path}.{key}")
        return problems
    if isinstance(seed, list) and seed:
        if not live:
            return [] if path in may_be_empty else [f"{path}: empty, nothing to compare with the seed's element"]
        return shape_differences(seed[0], live[0], **rules, path=f"{path}[]")
    return []
